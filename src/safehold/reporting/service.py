"""PLACEHOLDER (H3 replaces this file)."""


class ReportService:
    def __init__(self, db, audit, cases, evidence, settings):
        self.db, self.audit, self.cases, self.evidence, self.settings = db, audit, cases, evidence, settings

    def followup_once(self) -> int:
        return 0
