"""Console users (placeholder: being written)."""


class UserService:
    def __init__(self, db, audit, settings):
        self.db, self.audit, self.settings = db, audit, settings
