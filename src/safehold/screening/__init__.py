"""External classification services for new material (Principle 2): Google's Content Safety API, Thorn's Safer
Predict and C3P's Arachnid Shield, called off the hash-matching path through a job queue, their results handed
to the pipeline as classifier signals for human review (docs/classifiers.md)."""
