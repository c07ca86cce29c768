"""The pipeline of Principle 9 (adapt to the evolving threat): what the detectors look for, and what their
results become.

``terms`` keeps operators' versioned term lists in the database and hot-reloads every process's text detectors
when one changes; ``conversations``, ``posts`` and ``search`` put the pure text detectors (:mod:`safehold.text`)
behind services that store state, count, and open cases. Nothing here knows about HTTP.
"""
