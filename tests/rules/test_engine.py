"""The CEL rule engine: compile-time checks with stable codes and positions, evaluation, and a fuzz of hostile
expressions (no crash, no escape, bounded time)."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from safehold.errors import SafeholdError
from safehold.rules.engine import (
    MAX_EXPRESSION,
    Facts,
    Rule,
    RuleSet,
    check_effect,
    compile_expression,
    evaluate_one,
)

LISTS = {"bad_accounts": ["u1", "u2"], "bad_hashes": ["h1"]}


def rule(expr: str, status: str = "live", name: str = "r") -> Rule:
    return Rule(name, 1, status, {"type": "add_label", "label": "x"}, "alice", compile_expression(expr, LISTS))


def test_a_rule_reads_every_kind_of_signal():
    r = rule(
        'matches.exists(m, m.bank == "ncmec" && m.distance < 10) || scores.nudity > 0.9 && age.uploader == "13_15"'
        " || subject.account_id in lists.bad_accounts || hashes.exists(h, h in lists.bad_hashes) || grooming > 0.8"
    )
    rs = RuleSet([r], LISTS)
    assert rs.evaluate(Facts(matches=[{"bank": "ncmec", "distance": 3}])).live
    assert not rs.evaluate(Facts(matches=[{"bank": "ncmec", "distance": 30}])).live
    assert rs.evaluate(Facts(scores={"nudity": 0.95}, age={"uploader": "13_15"})).live
    assert rs.evaluate(Facts(subject={"account_id": "u2"})).live
    assert rs.evaluate(Facts(hashes=["h1"])).live
    assert rs.evaluate(Facts(grooming=0.9)).live
    assert not rs.evaluate(Facts(grooming=0.1, subject={"account_id": "u3"})).live


def test_shadow_rules_only_record_and_errors_never_match():
    rs = RuleSet([rule("grooming > 0.5", "shadow", "s"), rule("account.age_days < 2", name="e")], LISTS)
    out = rs.evaluate(Facts(grooming=0.9, account={"name": "x"}))
    assert [h.rule for h in out.shadow] == ["s"] and out.live == [] and out.errors == ["e"]


def test_a_rule_on_empty_signals_is_not_run_but_answers_the_same():
    rs = RuleSet([rule("size(matches) == 0"), rule("grooming > 0.5", name="g")], LISTS)
    out = rs.evaluate(Facts())
    assert [h.rule for h in out.live] == ["r"] and out.evaluated == 0


@pytest.mark.parametrize(
    ("expr", "code", "column"),
    [
        ("1 +", "rules.syntax", 3),
        ("foo > 1", "rules.unknown_variable", 1),
        ('scores.nudity > "a"', "rules.type", None),
        ("1", "rules.type", None),
        ("(" * 40 + "true" + ")" * 40, "rules.too_deep", 25),
        ("!" * 60 + "true", "rules.too_deep", 1),
        ("lists.bad_accounts.exists(x, true)", "rules.macro", 20),
        ("matches.exists(a, matches.exists(b, matches.exists(c, true)))", "rules.macro", 45),
        ("(matches + matches).exists(a, (matches + matches).exists(b, a.bank == b.bank))", "rules.macro", None),
        ('timestamp("2020-01-01T00:00:00Z") > timestamp("2019-01-01T00:00:00Z")', "rules.unknown_function", None),
        ('"x" in lists.nope', "rules.unknown_list", None),
        ("true || " * 600 + "true", "rules.too_large", None),
    ],
)
def test_bad_rules_are_refused_with_a_stable_code_and_position(expr, code, column):
    with pytest.raises(SafeholdError) as exc:
        compile_expression(expr, LISTS)
    assert exc.value.code == code
    if column is not None:
        assert exc.value.detail["column"] == column


def test_effects_are_checked():
    assert check_effect({"type": "open_case", "priority": "P1"}) == {"type": "open_case", "priority": "P1"}
    for bad in (
        {"type": "open_case"},
        {"type": "open_case", "priority": "P9"},
        {"type": "boom"},
        {"type": "add_label", "label": "x", "y": 1},
    ):
        with pytest.raises(SafeholdError) as exc:
            check_effect(bad)
        assert exc.value.code == "rules.invalid_effect"


_ATOMS = [
    "true",
    "false",
    "1",
    "0",
    "-1",
    "1.5",
    '"a"',
    '"é🙂\\u0000"',
    "b'\\xff'",
    "null",
    "[]",
    "{}",
    "[1, 2]",
    '{"a": 1}',
    "grooming",
    "scores",
    "scores.nudity",
    "matches",
    "account",
    "account.x",
    "subject.door",
    "hashes",
    "lists.bad_accounts",
    "9223372036854775807",
    "18446744073709551615u",
    '"' + "a" * 1000 + '"',
    "1e308",
    "-9223372036854775808",
    "account.y",
    "signals",
    '"\\u202e\\U0001F600"',
    "dyn(scores)",
    '"(a|a)*$"',
]
_BINARY = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in"]
_WRAPS = [
    "({})",
    "!{}",
    "-{}",
    "size({})",
    "string({})",
    "int({})",
    "double({})",
    "[{}]",
    '{{"k": {}}}',
    '{}.matches("(a+)+$")',
    '{}.matches("(a|aa)*b")',
    "{}.contains({})",
    "{} ? {} : {}",
    "matches.exists(m, {})",
    "hashes.map(h, {})",
    "matches.filter(m, {}).size() > 0",
    "{}[0]",
    '{}["k"]',
]


def _hostile(rng: random.Random, depth: int = 0) -> str:
    if depth > 6 or rng.random() < 0.25:
        return rng.choice(_ATOMS)
    if rng.random() < 0.5:
        return f"{_hostile(rng, depth + 1)} {rng.choice(_BINARY)} {_hostile(rng, depth + 1)}"
    wrap = rng.choice(_WRAPS)
    return wrap.format(*(_hostile(rng, depth + 1) for _ in range(wrap.count("{}"))))


def _garbage(rng: random.Random) -> str:
    alphabet = "()[]{}.,!?:-+*/%<>=&|\"' abcxyz019\\\u00e9\u202e\U0001f600\x00\n"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))


_FIXED = [
    "(" * 5000 + "1" + ")" * 5000,
    "-" * 10_000 + "1",
    "[" * 2000,
    "a." * 2000 + "b",
    '"' + "x" * 5000 + '"',
    "1" * 4000 + " > 0",
    "true && " * 500 + "true",
    " || ".join(f"account.k{i}" for i in range(40)),  # errors chained: celpy's messages grew as 2^n
    " && ".join(f"(account.k{i} || true)" for i in range(40)),
    "9223372036854775807 + 1 > 0",
    "-9223372036854775808 - 1 < 0",
    "1 / 0 == 1",
    "1 % 0 == 1",
    '"a" + 1 == "b"',
    '"a" * 1000000 == ""',
    'account.x.matches("(((a+)+)+)+$")',
    '"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!".matches("(a+)+$")',
    'hashes.exists(h, hashes.exists(g, h + g == ""))',
    "__import__('os').system('true')",
    "type(1) == int && dyn(1) == 1",
    "has(account.__class__)",
    'account["__class__"] == 1',
    "\u202etrue",
    "\x00",
    "",
    " ",
    # cel-cpp's own failure modes: a C++ abort or a stack overflow would kill the process, not fail the test.
    "[" * 24 + "true" + "]" * 24 + " == []",
    "-(" * 12 + "1" + ")" * 12 + " > 0",
    " + ".join(["1"] * 200) + " > 0",  # a left-deep chain past cel-cpp's parser recursion limit
    " && ".join(["grooming > 0.1"] * 200),
    "[" + ",".join(["1"] * 1500) + "].size() > 0",
    "{" + ",".join(f'"k{i}": {i}' for i in range(300)) + '}["k1"] == 1',
    '{"a": 1, "a": 2}.size() == 1',
    '"' + "\\u00e9" * 600 + '".size() > 0',
    "-9223372036854775808 / -1 == 0",
    "-9223372036854775808 % -1 == 0",
    "9223372036854775807 * 2 > 0",
    "18446744073709551615u + 1u > 0u",
    "0u - 1u > 0u",
    "uint(-1) > 0u",
    "int(1e300) > 0",
    'int("99999999999999999999") > 0',
    'double("nan") != double("nan")',
    "1u / 0u == 0u",
    "1.0 / 0.0 > 0.0",
    '"a" < 1',
    '[1] + ["a"] == []',
    '{"a": 1}[1] == 1',
    "size(1) == 1",
    'matches[0].distance + "x" == ""',
    'dyn("a") + 1 == 2',
    "account.y[100000] == 1",
    "account.y[-1] == 1",
    'hashes[9223372036854775807] == ""',
    'account.x.matches("(a*)*b")',
    'account.x.matches("a{1000}{1000}")',
    'account.x.matches("((((((((((a*)*)*)*)*)*)*)*)*)*)*$")',
    'account.x.matches("(?:a{100}){100}(?:b{100}){100}")',
    'account.x.matches("\\\\p{Greek}+|[\\\\x{10FFFF}]")',
    'account.x.matches("(")',
    'account.x.matches("\\\\1")',
    "string(account.y).size() > 0",
    "account.y.map(a, account.y.map(b, a + b)).size() > 0",
    'hashes.map(h, h + h + h + h).exists(h, h.contains("b"))',
    '"\\U0001F600\\u202e\\u0000".startsWith("\\U0001F600")',
    "b'\\xff\\xfe' == b''",
    '"\ud800" == ""',
    "timestamp(1) > timestamp(0)",
    'duration("1000000000000h") > duration("1s")',
    # the named-list rewrite: only `x in lists.name`, never nested, never a macro variable called lists
    '"u1" in lists.bad_accounts // a trailing comment',
    '("u1" in lists.bad_accounts) in lists.bad_hashes',
    '("u1" in lists.bad_accounts) == ("h1" in lists.bad_hashes)',
    "1 in lists.bad_accounts",
    "size(lists.bad_accounts) > 0",
    '"bad_accounts" in lists',
    'lists["bad_accounts"]["u1"]',
    'hashes.exists(lists, lists == "a")',
    'safehold_in_list("bad_accounts", "u1")',
]


_HOSTILE_FACTS = Facts(
    subject={"account_id": "\ud800", "door": "\u202e\U0001f600"},
    matches=[{"distance": 2**80, "bank": float("nan"), 3: None, "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}}],
    scores={"nudity": float("inf"), "x": "not a number"},
    signals=[{"confidence": -(2**70)}],
    grooming=float("nan"),
    account={"x": "\x00" * 2000, "y": list(range(10_000)), "z": b"\xff", "w": object()},
    hashes=["h1", 5, None],
)


#: Seconds that mean "hung" (a catastrophic regex or an unbounded loop runs for far longer); each expression
#: takes milliseconds, but a loaded test worker has been seen to stall for 2 s.
HANG = 10.0


def _check(expr: str) -> None:
    start = time.perf_counter()
    try:
        compiled = compile_expression(expr, LISTS)
    except SafeholdError as exc:
        assert exc.code.startswith("rules.")
        assert time.perf_counter() - start < HANG, expr[:80]
        return
    rs = RuleSet([Rule("f", 1, "live", {"type": "add_label", "label": "x"}, "a", compiled)], LISTS)
    facts = Facts(
        matches=[{"bank": "b", "distance": i} for i in range(64)],
        hashes=["a" * 1024] * 64,
        account={"x": "a" * 5000, "y": [1] * 10_000},
        scores={"nudity": 1.0},
        grooming=0.5,
    )
    rs.evaluate(facts)
    rs.evaluate(Facts())
    rs.evaluate(_HOSTILE_FACTS)
    assert time.perf_counter() - start < HANG, expr[:80]


@pytest.mark.parametrize("expr", _FIXED)
def test_hostile_expressions_never_crash_escape_or_hang(expr):
    _check(expr)


def test_fuzz_random_expressions():
    rng = random.Random(1234)
    for _ in range(300):
        _check(_hostile(rng))
    for _ in range(300):
        _check(_garbage(rng))


def test_expression_length_is_bounded():
    with pytest.raises(SafeholdError) as exc:
        compile_expression("x" * (MAX_EXPRESSION + 1))
    assert exc.value.code == "rules.too_large"


def test_named_lists_are_only_tested_with_in():
    rs = RuleSet([rule('subject.account_id in lists.bad_accounts && !("x" + "1" in lists.bad_hashes)')], LISTS)
    assert rs.evaluate(Facts(subject={"account_id": "u1"})).live
    assert not rs.evaluate(Facts(subject={"account_id": "u3"})).live
    for bad in ("size(lists.bad_accounts) > 0", '"bad_accounts" in lists', 'hashes.exists(lists, lists == "a")'):
        with pytest.raises(SafeholdError) as exc:
            compile_expression(bad, LISTS)
        assert exc.value.code == "rules.macro"


def test_a_batch_with_an_erring_rule_still_isolates_it():
    rules = [rule(f"grooming > 0.{i}", name=f"g{i}") for i in range(1, 9)] + [
        rule("grooming > 0.0 && 1 / 0 == 1", name="z")
    ]
    rs = RuleSet(rules, LISTS)
    out = rs.evaluate(Facts(grooming=0.55))
    assert [h.rule for h in out.live] == ["g1", "g2", "g3", "g4", "g5"] and out.errors == ["z"]
    assert out.evaluated == 9


def test_rule_sets_are_evaluated_from_many_threads():
    rs = RuleSet(
        [rule(f"grooming > 0.{i} || subject.account_id in lists.bad_accounts", name=f"g{i}") for i in range(9)], LISTS
    )
    facts = [Facts(grooming=i / 10, subject={"account_id": "u1" if i % 3 == 0 else "u9"}) for i in range(10)]
    expected = [[h.rule for h in rs.evaluate(f).live] for f in facts]

    def work(_):
        return [[h.rule for h in rs.evaluate(f).live] for f in facts * 20]

    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(work, range(8)):
            assert got == expected * 20


def test_batches_answer_exactly_what_each_rule_answers_alone():
    """The batched, skipping rule set against every rule evaluated on its own (``evaluate_one``)."""
    rng = random.Random(7)
    exprs = [
        "grooming > 0.5",
        'matches.exists(m, m.bank == "b" && m.distance <= 3)',
        '"nudity" in scores && scores.nudity > 0.5',
        "account.age_days < 3",  # errs when the key is absent
        "has(account.age_days) && account.age_days < 3 || subject.account_id in lists.bad_accounts",
        "account.flag",  # dyn: true, a string, or an error
        "size(hashes) == 0",
        "hashes.exists(h, h in lists.bad_hashes) || report.count >= 2",
        'age.uploader == "13_15"',
    ]
    rules = [rule(e, "shadow" if i % 2 else "live", f"r{i}") for i, e in enumerate(exprs * 8)]
    rs = RuleSet(rules, LISTS)
    for _ in range(200):
        facts = Facts(
            subject={"account_id": rng.choice(["u1", "u9"])},
            matches=[{"bank": "b", "distance": rng.randint(0, 6)}] * rng.randint(0, 2),
            scores={"nudity": rng.random()} if rng.random() < 0.5 else {},
            grooming=rng.choice([0.0, rng.random()]),
            account=rng.choice([{}, {"age_days": rng.randint(0, 5)}, {"flag": rng.choice([True, False, "yes"])}]),
            hashes=rng.choice([[], ["h1"], ["h2"]]),
            report=rng.choice([{}, {"present": True, "count": rng.randint(1, 3)}]),
            age={"uploader": rng.choice(["13_15", "adult"])},
        )
        alone = {r.name: evaluate_one(r.compiled, facts, LISTS) for r in rules}
        hits = {n for n, (hit, _) in alone.items() if hit}
        errors = {n for n, (_, error) in alone.items() if error}
        out = rs.evaluate(facts)
        rs.skip = False  # a skipped rule's error is not counted: compare errors with every rule run
        full = rs.evaluate(facts)
        rs.skip = True
        for o in (out, full):
            names = [h.rule for h in o.live + o.shadow]
            assert set(names) == hits
            assert [h.rule for h in o.live] == sorted((h.rule for h in o.live), key=lambda n: int(n[1:]))
        assert set(full.errors) == errors and set(out.errors) <= errors


_GUARDED = [
    'matches.exists(m, m.bank == "b" && m.distance <= 3)',
    'matches.exists(m, "b" == m.bank)',
    'signals.exists(s, s.source == "user_report" && s.confidence > 0.5)',
    '"nudity" in scores && scores.nudity > 0.5',
    "scores.nudity >= 0.7",  # errs when the label is absent
    "has(account.age_days) && account.age_days < 3",
    "account.age_days <= 2",  # errs when the key is absent or not a number
    '3 > account.age_days && "age_days" in account',
    "account.age_days > 1.5 && has(account.age_days)",  # a double bound on what is mostly an int
    "grooming > 0.5",
    "(grooming >= 0.25 && report.present)",
    "report.present && report.count >= 2",
    "account.flag",  # true, false, a string (an error) or absent (an error)
    "account.flag && grooming > 0.1",
    'account.kind == "x"',
    'age.uploader == "13_15" && "nudity" in scores',
    "subject.account_id in lists.bad_accounts",
    "account.owner in lists.bad_accounts",  # absent or an int: an error
    "hashes.exists(h, h in lists.bad_hashes && size(h) > 0)",
    "solicitation > 0.3 && size(signals) > 0",
    "size(matches) >= 2 && grooming < 0.5",
    "size(signals) > 0",
    "signals.exists(s, s.label in lists.bad_accounts && s.confidence > 0.2)",  # a label absent or not a string
    'report.present && report.category == "grooming"',
]


def test_guards_skip_only_rules_that_are_false():
    """Every rule above is indexed on a guard (a conjunct Python tests before cel-cpp runs); the rule set that
    skips on guards answers exactly what each rule answers alone, hits and errors, on odd values too."""
    rng = random.Random(11)
    rules = [rule(e, "shadow" if i % 3 == 0 else "live", f"r{i}") for i, e in enumerate(_GUARDED * 3)]
    assert all(r.compiled.guard is not None for r in rules)
    rs = RuleSet(rules, LISTS)
    odd = [None, 7, 2.5, True, False, "x", "b", "13_15", "u1", [1], {"a": 1}]
    evaluated = 0
    for _ in range(200):
        account = {
            k: rng.choice(values)
            for k, values in (
                ("age_days", [0, 1, 2, 3, 5, 1.0, 2.9, "2", None]),
                ("flag", [True, False, "yes", 1]),
                ("kind", ["x", "y", 1, True]),
                ("owner", ["u1", "u9", 7]),
            )
            if rng.random() < 0.6
        }
        facts = Facts(
            subject={"account_id": rng.choice(["u1", "u2", "u9", 3])},
            matches=[
                {"bank": rng.choice(["b", "c", 5, None]), "distance": rng.randint(0, 6)}
                if rng.random() < 0.9
                else {"distance": 1}
                for _ in range(rng.randint(0, 3))
            ],
            signals=[
                {"source": rng.choice(["user_report", "event", 3]), "confidence": rng.random()}
                | ({"label": rng.choice(["u1", "u9", 4])} if rng.random() < 0.8 else {})
                for _ in range(rng.randint(0, 2))
            ],
            scores={"nudity": rng.random()} if rng.random() < 0.5 else {"other": 0.9},
            grooming=rng.choice([0.0, 0.25, rng.random()]),
            solicitation=rng.choice([0.0, rng.random()]),
            account=account,
            hashes=rng.choice([[], ["h1"], ["h2", "h1"], ["h2"]]),
            report=rng.choice(
                [
                    {},
                    {"present": True, "count": rng.randint(1, 3), "category": rng.choice(["grooming", "x", 1])},
                    {"present": rng.choice(odd)},
                ]
            ),
            age={"uploader": rng.choice(["13_15", "adult", 5])},
        )
        alone = {r.name: evaluate_one(r.compiled, facts, LISTS) for r in rules}
        out = rs.evaluate(facts)
        assert {h.rule for h in out.live + out.shadow} == {n for n, (hit, _) in alone.items() if hit}
        assert set(out.errors) == {n for n, (_, error) in alone.items() if error}
        evaluated += out.evaluated
    assert evaluated < 0.7 * 200 * len(rules)  # the guards do skip, even on these odd detections
