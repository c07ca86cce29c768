"""Webhooks (placeholder: being written)."""


class WebhookService:
    def __init__(self, db, audit, sealer, settings):
        self.db, self.audit, self.sealer, self.settings = db, audit, sealer, settings
