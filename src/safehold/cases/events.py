"""Event ingest (placeholder: being written)."""


class EventService:
    def __init__(self, db, audit, cases, scans, vault, actions):
        self.db, self.audit, self.cases, self.scans, self.vault, self.actions = db, audit, cases, scans, vault, actions
