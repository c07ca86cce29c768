"""Principle 10, sharing: hash lists kept in sync with their sources (exchanges), feedback to those sources,
contributions to peers, false-positive controls and re-matching what was already seen (docs/sharing.md)."""
