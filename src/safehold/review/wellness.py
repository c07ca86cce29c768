"""Reviewer wellness (placeholder: being written)."""


class WellnessService:
    def __init__(self, db, audit):
        self.db, self.audit = db, audit
