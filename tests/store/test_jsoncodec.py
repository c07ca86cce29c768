"""The store's JSON codec (safehold.store.jsoncodec): orjson, with ``json`` for what orjson refuses, so every value
``json`` stored is stored the same (in fewer bytes), on both engines."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sqlalchemy import insert, select

from safehold.store import jsoncodec
from safehold.store.models import IngestedEvent

VALUES = [
    {"a": 1, "b": [1.5, None, True, "é ✓ 😀"], "c": {"d": {}}},
    {"big": 2**70, "negative": -(2**65)},  # beyond 64 bits: orjson refuses, json writes it
    ["lone \ud800 surrogate"],  # orjson refuses a lone surrogate; json escapes it
    {1: "int key", "s": "str key"},
]


@pytest.mark.parametrize("value", VALUES)
def test_values_read_back_as_json_stores_them(value):
    expected = json.loads(json.dumps(value))
    assert jsoncodec.loads(jsoncodec.dumps(value)) == expected
    assert jsoncodec.loads(jsoncodec.dumps_bytes(value)) == expected


def test_text_only_json_reads_is_read():
    assert jsoncodec.loads('{"x": NaN}')["x"] != jsoncodec.loads('{"x": NaN}')["x"]  # NaN, as json reads it


@pytest.mark.parametrize("number", [2**70 + 1, 2**64, -(2**63) - 1, 12345678901234567890123])
def test_integers_beyond_64_bits_read_back_exact(number):
    text = json.dumps({"n": number, "s": "id-1234567890123456789"})
    assert jsoncodec.loads(text)["n"] == number and jsoncodec.loads(text.encode())["n"] == number
    assert type(jsoncodec.loads(text)["n"]) is int


def test_a_datetime_is_refused_as_json_refuses_it():
    import datetime as dt

    with pytest.raises(TypeError):
        jsoncodec.dumps({"at": dt.datetime.now(dt.UTC)})


def test_an_object_is_written_through_its_to_json_and_a_dataclass_only_so():
    @dataclass
    class Shared:
        items: list

        def to_json(self):
            return {"items": self.items}

    @dataclass
    class Plain:
        x: int

    assert jsoncodec.loads(jsoncodec.dumps({"s": Shared([1, 2])})) == {"s": {"items": [1, 2]}}
    assert jsoncodec.loads(jsoncodec.dumps_bytes([Shared([{"big": 2**70}])])) == [{"items": [{"big": 2**70}]}]
    with pytest.raises(TypeError):  # as json.dumps refuses it
        jsoncodec.dumps(Plain(1))


def test_non_finite_floats_are_written_as_null():
    assert jsoncodec.loads(jsoncodec.dumps({"x": float("nan"), "y": float("inf")})) == {"x": None, "y": None}


@pytest.mark.parametrize("value", [VALUES[0], VALUES[1], {"1": "int key"}])
def test_json_columns_round_trip_on_both_engines(svc, value):
    with svc.db.session() as s:
        s.execute(insert(IngestedEvent).values(key="k", body_sha256="0" * 64, result=value))
    with svc.db.session() as s:
        assert s.scalar(select(IngestedEvent.result).where(IngestedEvent.key == "k")) == value
