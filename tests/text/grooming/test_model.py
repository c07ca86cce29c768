import json

import pytest

from safehold.errors import SafeholdError
from safehold.text.grooming.model import GroomingModel, train
from safehold.text.grooming.pan2012 import read_conversations, read_predators
from safehold.text.grooming.scorer import GroomingScorer, Message


@pytest.fixture(scope="module")
def model(corpus_paths):
    return train(read_conversations(corpus_paths[0]), read_predators(corpus_paths[1]), buckets=1024)


def test_train_save_load_predict(model, tmp_path):
    path = tmp_path / "model.json"
    model.save(path)
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert data["format"] == "safehold.grooming-model" and data["buckets"] == 1024
    loaded = GroomingModel.load(path)
    scorer = GroomingScorer(model=loaded)
    groomer = [
        Message("A", "i'm 13"),
        Message("B", "are you home alone?"),
        Message("B", "don't tell your parents, our little secret"),
        Message("B", "send me a pic"),
        Message("B", "i can pick you up after school"),
    ]
    benign = [Message("M", "dinner is in the fridge"), Message("K", "thanks mom")]
    g, b = scorer.assess(groomer), scorer.assess(benign)
    assert 0.0 <= b.score < g.score <= 1.0
    assert g.risk_author == "B"
    assert loaded.predict_author({"stage:exclusivity": 0.9}) == model.predict_author({"stage:exclusivity": 0.9})


def test_training_needs_both_labels(corpus_paths):
    with pytest.raises(SafeholdError) as err:
        train(read_conversations(corpus_paths[0]), set())
    assert err.value.code == "grooming.training_labels"


@pytest.mark.parametrize("content", ["not json", '{"format": "other"}', '{"format": "safehold.grooming-model"}'])
def test_invalid_model_file(tmp_path, content):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(SafeholdError) as err:
        GroomingModel.load(path)
    assert err.value.code == "grooming.invalid_model"


def test_missing_model_file(tmp_path):
    with pytest.raises(SafeholdError) as err:
        GroomingModel.load(tmp_path / "none.json")
    assert err.value.code == "grooming.model_not_found"
