"""PLACEHOLDER (H3 replaces this file)."""


class ReportWorker:
    def __init__(self, reports, settings):
        self.reports, self.settings = reports, settings

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
