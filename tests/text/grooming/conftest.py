from pathlib import Path

import pytest

from safehold.text.grooming.scorer import GroomingScorer

DATA = Path(__file__).resolve().parents[2] / "data" / "grooming"


@pytest.fixture(scope="session")
def scorer() -> GroomingScorer:
    return GroomingScorer()


@pytest.fixture(scope="session")
def corpus_paths() -> tuple[Path, Path]:
    return DATA / "conversations.xml", DATA / "predators.txt"
