"""Live streams (Principle 5): which frames to look at, the last seconds kept, and what a frame matched.

A pure library, like the other detectors: :mod:`.sampling` decides from a stream's risk how often a frame is
looked at, :mod:`.buffer` keeps the last seconds of sampled frames within a byte bound, :mod:`.watch` holds the
streams under watch and runs a sampled frame through a hash-and-match function it is given, and :mod:`.pull`
reads frames of a stream Safehold pulls itself (ffmpeg) from an address the operator allows. What a verdict
becomes (a case, an ``interrupt`` action, preserved evidence) is the pipeline's business
(:mod:`safehold.pipeline.live`); nothing here stores or serves anything.
"""
