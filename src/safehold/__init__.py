"""Safehold: open-source child-safety infrastructure for online platforms."""

__version__ = "0.1.0"
