"""Text safety detectors: a shared normaliser and term lists (this package), grooming, solicitation and search.

Pure library code: no database, HTTP or settings, so each detector can be used, tested and benchmarked alone.
"""

from safehold.text.normalize import MAX_TEXT, normalize
from safehold.text.terms import Hit, Matcher, Term, TermList, load_list, load_starter

__all__ = ["MAX_TEXT", "Hit", "Matcher", "Term", "TermList", "load_list", "load_starter", "normalize"]
