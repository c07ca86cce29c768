"""Webhook dispatcher (placeholder: being written)."""


class Dispatcher:
    def __init__(self, db, webhooks, settings):
        self.db, self.webhooks, self.settings = db, webhooks, settings

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
