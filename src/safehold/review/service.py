"""Review decisions (placeholder: being written)."""


class ReviewService:
    def __init__(self, db, audit, cases, actions, vault, banks, wellness, settings):
        self.db, self.audit, self.cases, self.actions = db, audit, cases, actions
        self.vault, self.banks, self.wellness, self.settings = vault, banks, wellness, settings
