"""``safehold age``: the same operations as the API's, over the test's own store."""

from __future__ import annotations

import json

import pytest


def test_record_show_and_list(cli):
    r = cli("age", "record", "kid-1", "--source", "declared", "--birth-date", "2014-02-03", "--confidence", "0.8")
    assert "band " in r.output and "rule protective" in r.output
    cli("age", "record", "kid-1", "--source", "reviewer", "--band", "13-15")
    shown = json.loads(cli("age", "show", "kid-1", "--json").output)
    assert (shown["band"], shown["rule"]) == ("13-15", "reviewer") and len(shown["signals"]) == 2
    assert shown["signal"]["actor"] == "cli"
    table = cli("age", "show", "kid-1").output
    assert "reviewer" in table and "2014-02-03" in table
    cli("age", "record", "grown", "--source", "platform", "--age", "40")
    listed = json.loads(cli("age", "list", "--band", "13-15", "--json").output)
    assert [a["account_id"] for a in listed["accounts"]] == ["kid-1"] and listed["total"] == 1
    assert "2 of 2" in cli("age", "list").output


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--source", "chat", "--age", "13"), "cli.usage"),
        (("--source", "declared"), "cli.conflicting_options"),
        (("--source", "declared", "--age", "13", "--band", "13-15"), "cli.conflicting_options"),
        (("--source", "declared", "--band", "teen"), "age.invalid"),
    ],
)
def test_bad_signals_are_refused_with_a_code(cli, args, code):
    r = cli("age", "record", "kid", *args, code=2)
    assert code in r.output


def test_show_names_the_sender_band_and_an_age_conflict(cli):
    cli("age", "record", "groomer", "--source", "platform", "--band", "adult")
    cli("age", "record", "groomer", "--source", "declared", "--age", "14")
    shown = cli("age", "show", "groomer").output.replace("\n", " ")
    assert "band 13-15" in shown and "as a sender adult" in shown and "age conflict" in shown


def test_an_unknown_account(cli):
    assert "band unknown by rule none" in cli("age", "show", "nobody").output.replace("\n", " ")
