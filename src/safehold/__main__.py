"""``python -m safehold`` is the ``safehold`` command."""

from safehold.cli.main import app

app(prog_name="safehold")
