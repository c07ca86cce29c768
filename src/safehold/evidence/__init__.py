"""Evidence preservation: encrypted, content-addressed, retained on schedule, every access on the audit log."""
