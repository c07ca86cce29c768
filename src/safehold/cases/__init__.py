"""Cases: every detection about a subject (a content item and the account behind it) becomes a case."""
