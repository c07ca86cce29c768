"""The `cli` fixture: runs `safehold …` in-process against the test's own home and database."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.fixture
def cli(monkeypatch, settings):
    from safehold.cli import common
    from safehold.cli.main import app
    from safehold.config import get_settings

    monkeypatch.setenv("SAFEHOLD_HOME", str(settings.home))
    monkeypatch.setenv("SAFEHOLD_DATABASE_URL", settings.effective_database_url)
    get_settings.cache_clear()
    common._services = None
    runner = CliRunner()

    def run(*args, code=0, input=None):
        result = runner.invoke(app, [str(a) for a in args], input=input)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    yield run
    if common._services is not None:
        common._services.close()
    common._services = None
    get_settings.cache_clear()
