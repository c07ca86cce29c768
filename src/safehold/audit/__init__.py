"""Tamper-evident audit log: every configuration change and privileged read, hash-chained (docs/audit.md)."""

from safehold.audit.service import GENESIS, AuditService, VerifyResult, canonical, record_hash, verify_records

__all__ = ["GENESIS", "AuditService", "VerifyResult", "canonical", "record_hash", "verify_records"]
