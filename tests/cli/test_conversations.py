"""`safehold conversation …`: feed a JSON Lines file, show, list and forget, with clean errors on bad input.

Synthetic, non-explicit messages with cue phrases from the bundled grooming list.
"""

from __future__ import annotations

import json

LINES = [
    {"conversation": "chat-1", "id": "m1", "author": "helper", "text": "wow you are so mature for your age"},
    {"conversation": "chat-1", "id": "m2", "author": "kid", "text": "lol thanks", "age": 12},
    {"conversation": "chat-2", "id": "q1", "author": "a", "text": "see you at practice"},
    {"conversation": "chat-1", "id": "m3", "author": "helper", "text": "are you home alone right now?"},
    {"conversation": "chat-1", "id": "m4", "author": "helper", "text": "don't tell your parents we talk ok"},
    {"conversation": "chat-2", "id": "q2", "author": "b", "text": "ok", "sent_at": "2026-01-05T10:00:00Z"},
]


def write(path, lines) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def test_feed_show_list_forget(cli, tmp_path):
    path = write(tmp_path / "chats.jsonl", LINES)
    out = cli("conversation", "feed", path).stdout
    assert "chat-1" in out and "secrecy" in out and "kid is a minor (12, profile)" in out
    assert "6 messages in 2 conversation(s): 6 scored, 0 duplicate(s); 1 alerting, 1 case(s) opened" in out

    again = json.loads(cli("conversation", "feed", path, "--json").stdout)  # feeding again is safe
    assert again["summary"] == {
        "lines": 6, "accepted": 0, "duplicates": 6, "cases_opened": 0, "conversations": 2, "alerting": 1
    }  # fmt: skip
    assert list(again["alerting"]) == ["chat-1"] and again["alerting"]["chat-1"]["case"]["status"] == "open"

    shown = cli("conversation", "show", "chat-1").stdout
    assert "high" in shown and "exclusivity (m4): don't tell your parents" in shown
    assert json.loads(cli("conversation", "show", "chat-1", "--json").stdout)["messages"] == 4

    listed = json.loads(cli("conversation", "list", "--json").stdout)
    assert [c["conversation_id"] for c in listed] == ["chat-1", "chat-2"]
    alerts = json.loads(cli("conversation", "list", "--alerts", "--json").stdout)
    assert [c["conversation_id"] for c in alerts] == ["chat-1"]
    assert "chat-2" not in cli("conversation", "list", "--min-score", "0.5").stdout

    assert "forgot conversation chat-2" in cli("conversation", "forget", "chat-2", "--yes").stdout
    assert "conversation.not_found" in cli("conversation", "show", "chat-2", code=2).stderr
    assert "conversation.not_found" in cli("conversation", "forget", "chat-2", "--yes", code=2).stderr


def test_bad_lines_stop_with_a_clear_error_and_keep_what_came_before(cli, tmp_path):
    path = write(tmp_path / "bad.jsonl", [LINES[0], LINES[1], "{not json", LINES[3]])
    err = cli("conversation", "feed", path, code=2).stderr
    assert "conversation.invalid_line" in err and "line 3" in err
    shown = json.loads(cli("conversation", "show", "chat-1", "--json").stdout)
    assert shown["messages"] == 2  # the lines before the bad one were scored

    cases = {
        "missing id": ({"conversation": "c", "author": "a", "text": "hi"}, "request.invalid", "id"),
        "bad age": ({**LINES[0], "age": 300}, "request.invalid", "age"),
        "long text": ({**LINES[0], "text": "x" * 100_001}, "conversation.text_too_long", "100,000"),
        "no conversation": ({"id": "m1", "author": "a", "text": "hi"}, "request.invalid", "conversation id"),
        "unknown field": ({**LINES[0], "colour": "red"}, "conversation.invalid_line", "colour"),
        "not an object": ("[1, 2]", "conversation.invalid_line", "JSON object"),
    }
    for name, (line, code, words) in cases.items():
        err = cli("conversation", "feed", write(tmp_path / "one.jsonl", [line]), code=2).stderr
        assert code in err and "line 1" in err and words in err, (name, err)
    assert cli("conversation", "list", "--limit", "0", code=2).stderr.count("request.invalid_limit") == 1
