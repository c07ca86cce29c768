"""Console sessions (placeholder: being written)."""


class SessionService:
    def __init__(self, db, audit, settings, users):
        self.db, self.audit, self.settings, self.users = db, audit, settings, users
