from pathlib import Path

import pytest

from safehold.text.grooming.scorer import GroomingScorer

DATA = Path(__file__).resolve().parents[2] / "data" / "grooming"


@pytest.fixture(scope="session")
def scorer() -> GroomingScorer:
    """The stage rules alone: their constants are documented, so these tests can check them by hand."""
    return GroomingScorer(rules_only=True)


@pytest.fixture(scope="session")
def shipped() -> GroomingScorer:
    """The default: the shipped model on top of the stage rules."""
    return GroomingScorer()


@pytest.fixture(scope="session")
def corpus_paths() -> tuple[Path, Path]:
    return DATA / "conversations.xml", DATA / "predators.txt"
