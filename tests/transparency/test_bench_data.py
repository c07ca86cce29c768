"""The transparency benchmark's data generator at small scale: the store it fills opens at the head migration,
holds what was asked for, keeps the audit chain intact and the reviewers under their caps."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from sqlalchemy import func, select

from safehold.store import migrate
from safehold.store.models import AuditRecord, Case, CaseSignal, Report, ScanCount, User
from safehold.transparency.families.people import People
from safehold.transparency.periods import parse_period
from tests.conftest import REPO


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("bench_transparency_data", REPO / "bench" / "transparency_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_small_history_has_what_was_asked_for(generator, settings):
    out = generator.generate(settings, cases=2000, scans=50_000, seed=3, year=2025, quiet=True)
    assert out["rows"]["cases"] == 2000 and out["rows_total"] == sum(out["rows"].values())
    from safehold.services import Services

    svc = Services(settings)
    try:
        assert migrate.is_current(svc.db)
        assert svc.audit.verify().ok
        with svc.db.session() as s:
            cases = s.scalar(select(func.count()).select_from(Case))
            closed = s.scalar(select(func.count()).where(Case.status == "closed"))
            signals = s.scalar(select(func.count()).select_from(CaseSignal))
            assert cases == 2000 and 0.8 < closed / cases < 0.9
            assert 1.2 < signals / cases < 1.4
            assert s.scalar(select(func.sum(ScanCount.count))) == 50_000
            assert 30 <= s.scalar(select(func.count()).select_from(Report)) <= 40
            years = {d.year for d in s.scalars(select(Case.opened_at))}
            assert years == {2025}
            reviewers = s.scalar(select(func.count(func.distinct(AuditRecord.actor))))
            assert 10 < reviewers <= 40 and s.scalar(select(func.count()).select_from(User)) == 43
            # what the benchmark reads: the exposure figure never shows a reviewer-day over the cap it was under
            period = parse_period("2025")
            facts = list(People().rollup(s, period.start_at, period.end_at))
            assert sum(f.value for f in facts if f.family == "people.exposure") > 0
            assert sum(f.total for f in facts if f.family == "people.exposure") == out["rows"]["audit_log"]
        assert svc.cases.get(1)["id"] == 1  # the application reads the rows
        # a server on the store runs quietly: no exchange round is due (their settings are empty, nothing is behind)
        assert [e["enabled"] for e in svc.exchanges.list()] == [False, False]
        assert svc.exchanges.fetch_due() == 0
    finally:
        svc.close()


def test_the_same_seed_gives_the_same_history(generator, tmp_path):
    from safehold.config import Settings

    argv = ["--home", tmp_path / "a", "--cases", 300, "--scans", 1000, "--seed", 5, "--year", 2025, "--quiet"]
    a = generator.main([str(x) for x in [*argv, "--out", tmp_path / "a.json"]])  # the command line
    b = generator.generate(Settings(home=tmp_path / "b"), cases=300, scans=1000, seed=5, year=2025, quiet=True)
    assert (a["rows"], a["audit_head"]) == (b["rows"], b["audit_head"])
    assert json.loads((tmp_path / "a.json").read_text())["rows"] == a["rows"]


def test_a_store_with_cases_is_refused(generator, settings):
    generator.generate(settings, cases=50, scans=10, seed=1, year=2025, quiet=True)
    with pytest.raises(SystemExit):
        generator.generate(settings, cases=50, scans=10, seed=1, year=2025, quiet=True)
