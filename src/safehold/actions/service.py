"""Policies and actions (placeholder: being written)."""


class ActionService:
    def __init__(self, db, audit, webhooks):
        self.db, self.audit, self.webhooks = db, audit, webhooks
