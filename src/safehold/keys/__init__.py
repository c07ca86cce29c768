"""Key rotation: re-wrap what the instance and evidence keys seal, report and retire previous keys.

The key ring itself (which keys a process holds, how it notices a rotation) is :mod:`safehold.store.keyring`;
this package knows *where* sealed values live, which needs the domain packages, so it sits beside ``backup``.
"""
