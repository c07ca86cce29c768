import base64
import json
import math
import sys

import pytest

from safehold.errors import SafeholdError
from safehold.text.grooming.features import message_vector
from safehold.text.grooming.model import GroomingModel, train
from safehold.text.grooming.pan2012 import Conversation, read_conversations, read_predators
from safehold.text.grooming.scorer import GroomingScorer, Message
from safehold.text.normalize import normalize

GROOMER = [
    Message("A", "i'm 13"),
    Message("B", "are you home alone?"),
    Message("B", "don't tell your parents, our little secret"),
    Message("B", "send me a pic"),
    Message("B", "i can pick you up after school"),
]
BENIGN = [Message("M", "dinner is in the fridge"), Message("K", "thanks mom")]


@pytest.fixture(scope="module")
def model(corpus_paths):
    return train(read_conversations(corpus_paths[0]), read_predators(corpus_paths[1]), buckets=1024)


def test_train_save_load_predict(model, tmp_path):
    path = tmp_path / "model.json"
    model.save(path)
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert data["format"] == "safehold.grooming-model" and data["buckets"] == 1024
    assert len(base64.b64decode(data["text_weights"])) == 4 * 1024
    loaded = GroomingModel.load(path)
    scorer = GroomingScorer(model=loaded)
    g, b = scorer.assess(GROOMER), scorer.assess(BENIGN)
    assert 0.0 <= b.score < g.score <= 1.0
    assert g.risk_author == "B"
    same = GroomingScorer(model=model).assess(GROOMER)
    assert same.to_dict() == g.to_dict()


@pytest.mark.parametrize("chars", [0, 4])
def test_message_score_is_the_dot_product_of_the_message_vector(model, chars):
    """The scorer's cached per-word sums must equal what training saw: w · x for the message's vector."""
    m = GroomingModel(model.weights, model.text, model.intercept, chars=chars)
    for text in ("are you home alone?", "lol lol lol", "ok ok ok ok", "letsmeetupsoon ok", "", "a b c d e f a b"):
        norm = normalize(text)
        idx, v = message_vector(norm, m.buckets, chars)
        assert m.message_score(norm) == pytest.approx(sum(m.text[i] for i in idx) * v, abs=1e-5)
        assert m.message_score(norm) == pytest.approx(m.message_score(norm))  # cached path


def test_calibration_moves_the_threshold(model):
    moved = model.calibrated(0.9, 0.7)
    base = {"stage:sexual": 0.6}
    for text_sum in (-3.0, 0.0, 4.0):
        p, q = model.predict(base, text_sum, 5), moved.predict(base, text_sum, 5)
        # what scored 0.9 before scores 0.7 after: same ordering, shifted by logit(0.7) - logit(0.9)
        shift = math.log(0.7 / 0.3) - math.log(0.9 / 0.1)
        assert math.log(q / (1 - q)) == pytest.approx(math.log(p / (1 - p)) + shift, abs=1e-6)
    assert moved.meta["calibration"] == {"threshold": 0.9, "maps_to": 0.7}


def test_training_needs_both_labels(corpus_paths):
    with pytest.raises(SafeholdError) as err:
        train(read_conversations(corpus_paths[0]), set())
    assert err.value.code == "grooming.training_labels"


def test_training_without_scikit_learn_is_a_clean_error(monkeypatch, corpus_paths):
    for name in ("sklearn", "sklearn.feature_extraction", "sklearn.linear_model"):
        monkeypatch.setitem(sys.modules, name, None)  # as if the 'train' extra were not installed
    with pytest.raises(SafeholdError) as err:
        train(read_conversations(corpus_paths[0]), read_predators(corpus_paths[1]), buckets=64)
    assert err.value.code == "grooming.training_unavailable"


def test_training_without_held_out_offenders_stays_uncalibrated():
    convs = [
        Conversation("c1", [Message("g", "are you home alone? our secret"), Message("k", "yes")]),
        Conversation("c2", [Message("m", "dinner is ready"), Message("k", "ok")]),
    ]
    model = train(convs, {"g"}, buckets=64, calibration_share=0.0)
    assert "calibration" not in model.meta


def test_shipped_model_is_the_default_and_documents_its_sources():
    shipped = GroomingModel.default()
    assert GroomingScorer().model is shipped
    assert GroomingScorer(rules_only=True).model is None
    sources = {s["repo"]: s for s in shipped.meta["sources"]}
    assert "helenkoutli/PervertedJusticeDataset" in sources
    assert all(len(s["commit"]) == 40 and s["licence"] for s in sources.values())
    assert shipped.meta["calibration"]["maps_to"] == 0.7


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format": "other"}',
        '{"format": "safehold.grooming-model"}',
        '{"format": "safehold.grooming-model", "version": 1, "weights": {}, "intercept": 0, "buckets": 0}',
        '{"format": "safehold.grooming-model", "version": 2, "buckets": 2, "shrink": 8, "chars": 4, '
        '"intercept": 0, "weights": {}, "text_weights": "AAAAAA=="}',
    ],
)
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
