"""Backup and restore of a whole store: the database, the sealed files (``vault/``, ``evidence/``) and, apart from
them, the keys.

A backup is one uncompressed tar (:mod:`safehold.backup.archive`): a consistent copy of the database
(:mod:`safehold.backup.database`: SQLite's online backup, or ``pg_dump -Fc``), every sealed file, and a manifest
with the SHA-256 and size of each, the schema revision and the audit log's head. Keys go to a separate owner-only
file unless asked otherwise: a backup that holds both the sealed data and its keys gives whoever steals it
everything. :mod:`safehold.backup.service` creates, verifies and restores, and after a restore proves the result:
the audit chain verifies and every preserved evidence item opens and matches its recorded hashes.

It sits above the wiring (:mod:`safehold.services`) because a restore builds the services of the restored store
to run those checks.
"""
