"""Classifiers (Principle 2): labelled scores for content no bank knows yet; their hits go to human review only."""
