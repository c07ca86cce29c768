"""Cases (placeholder: being written)."""


class CaseService:
    def __init__(self, db, audit, settings):
        self.db, self.audit, self.settings = db, audit, settings

    def refresh_priorities(self, now=None) -> int:
        return 0
