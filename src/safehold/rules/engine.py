"""Operator rules in CEL (Common Expression Language, through ``cel-python``): compiled once, evaluated many times.

A pure library (no storage, no HTTP): :mod:`safehold.rules.book` stores the rules and hands the pipeline the
compiled set; the benchmark and the backtest use this module alone.

A rule is a name, a CEL expression over the *activation* (the variables of :data:`VARIABLES`, built by
:func:`activation` from what the pipeline sees), an effect (:data:`EFFECTS`), an owner, a version and a status.
CEL has no loops, no recursion and no side effects; on top of that every rule is bounded before it is saved:

- the expression is at most :data:`MAX_EXPRESSION` characters, nests brackets and unary operators at most
  :data:`MAX_NESTING` deep, and parses to at most :data:`MAX_NODES` syntax nodes;
- it names only the variables of :data:`VARIABLES` and the functions of :data:`FUNCTIONS` (no ``timestamp`` or
  ``duration`` parsing, no protobuf messages); ``matches()`` runs on RE2 (linear time: no regex bomb);
- comprehension macros (``exists``, ``all``, ``map``, ``filter``, ``exists_one``) nest at most
  :data:`MAX_MACRO_DEPTH` deep, never range over a named list (they are sets: use ``in``), and range only over the
  activation's bounded lists (:data:`MAX_ITEMS` items, strings of at most :data:`MAX_STRING` characters), so the
  worst case of a rule is a small product of small numbers;
- it is evaluated once against a full sample activation at save time, so a type error (``scores.x > "a"``) is
  refused then, not found on a live detection.

An evaluation error at run time (a key absent from ``account``, a division by zero) makes the rule not match,
and is counted; it never fails the detection. CEL's own semantics hold: ``false && error`` is ``false``.

Speed: celpy interprets its syntax tree in pure Python (about 0.2 ms for ``scores.nudity > 0.8``), far slower
than a native CEL. Two things keep the rule set cheap: rules run in celpy's *transpiled* form (its Transpiler
turns the tree into Python lambdas, compiled once here into one function per rule, so evaluating is one call),
and a rule whose every referenced signal variable is empty in a detection is not run at all: its result on an
empty activation is computed at compile time and is exact (:meth:`RuleSet.evaluate`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import Any

import celpy
import celpy.evaluation
from celpy import celtypes
from celpy.celparser import CELParseError

from safehold.errors import SafeholdError

#: celpy logs every evaluation error at ERROR ("Internal error"): an operator's rule erring on a detection is
#: counted by the rule set, not a fault of this process.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

MAX_EXPRESSION = 4096
MAX_NESTING = 24
MAX_NODES = 3000
MAX_MACRO_DEPTH = 2
MAX_ITEMS = 64
MAX_STRING = 1024
MAX_LIST_ITEMS = 100_000
MAX_ERROR_REPR = 300
NAME_PATTERN = "^[a-z0-9_.-]{1,48}$"
_NAME = re.compile(NAME_PATTERN)

STATUSES = ("draft", "shadow", "live", "disabled")
PRIORITIES = ("P0", "P1", "P2", "P3", "P4")
#: Each effect and the parameters it takes (name -> (type, required)).
EFFECTS: dict[str, dict[str, tuple[type, bool]]] = {
    "open_case": {"priority": (str, True), "category": (str, False)},
    "add_label": {"label": (str, True)},
    "action": {"name": (str, True)},
    "route_to_queue": {"queue": (str, True)},
    "escalate_to_reporting": {},
}

#: The activation: every variable a rule sees, its CEL type, and what it holds (docs/rules.md).
VARIABLES: dict[str, tuple[str, str]] = {
    "subject": ("map(string, dyn)", "kind (content|account), content_id, account_id, media_type, door"),
    "matches": ("list(map)", "block-bank hash matches: bank, category, distance, signal_type, confidence"),
    "scores": ("map(string, double)", "classifier scores: label -> highest score"),
    "signals": ("list(map)", "the door's own signals: source, category, confidence, label"),
    "grooming": ("double", "grooming risk of the conversation (0 without one)"),
    "solicitation": ("double", "solicitation risk of the text (0 without text)"),
    "age": ("map(string, dyn)", "uploader: the uploader's age band; reasons: list of age reasons"),
    "report": ("map(string, dyn)", "present, category, count, trusted: the user reports about the subject"),
    "account": ("map(string, dyn)", "account facts the platform sent (account metadata)"),
    "hashes": ("list(string)", "the scanned content's own hash values"),
    "lists": ("map(string, map(string, bool))", "named lists (terms, hashes, accounts): use `x in lists.name`"),
}
#: Variables whose emptiness lets a rule be skipped (:meth:`RuleSet.evaluate`); the others are always present.
SIGNAL_VARIABLES = ("matches", "scores", "signals", "grooming", "solicitation", "report", "account", "hashes")
_SKIPPABLE = frozenset(SIGNAL_VARIABLES)
FUNCTIONS = frozenset(
    {"size", "matches", "contains", "startsWith", "endsWith", "int", "uint", "double", "string", "bool", "has"}
)
MACROS = frozenset({"exists", "all", "exists_one", "map", "filter"})
_UNARY_RUN = re.compile(r"[!\-\s]{" + str(MAX_NESTING + 1) + ",}")

_ENV = celpy.Environment(runner_class=celpy.CompiledRunner)

_celpy_error_repr = celpy.evaluation.CELEvalError.__repr__


def _short_repr(self) -> str:
    return _celpy_error_repr(self)[:MAX_ERROR_REPR]


#: celpy 0.5's ``||`` and ``&&`` on two errors raise a new error whose message holds both errors' ``repr``, each
#: of which holds its own message: a chain of n such operators on errors (``x.a || x.b || …`` when ``x`` lacks
#: them) builds a message of 2ⁿ characters — a minute and gigabytes from a 1 KB expression (the fuzz test found
#: it). The repr is cut short so the message stays bounded; no rule reads error messages.
celpy.evaluation.CELEvalError.__repr__ = _short_repr


class NamedList(celtypes.MapType):
    """A named list as a CEL map (a set): ``x in lists.name`` is one hash lookup. celpy's own ``in`` compares the
    item with every key in turn (CEL equality across types), which for a list of 100,000 accounts is 100,000
    comparisons per test."""


def _fast_in(item: Any, container: Any) -> Any:
    if type(container) is NamedList and isinstance(item, str):
        return celtypes.BoolType(item in container)
    return celpy.evaluation.operator_in(item, container)


#: The globals the transpiled rules run in: celpy's evaluation module, with ``in`` on a named list a hash lookup.
_GLOBALS = {
    **celpy.evaluation.__dict__,
    "celpy": SimpleNamespace(
        celtypes=celtypes, evaluation=SimpleNamespace(**{**vars(celpy.evaluation), "operator_in": _fast_in})
    ),
}


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SafeholdError(
            "rules.invalid_name", "A rule name is 1 to 48 characters: lower-case letters, digits, '_', '.', '-'."
        )
    return name


def check_effect(effect: object) -> dict:
    """The effect as stored: ``{"type": ..., **params}``, every parameter known, typed and bounded."""
    if not isinstance(effect, Mapping) or effect.get("type") not in EFFECTS:
        raise SafeholdError(
            "rules.invalid_effect", f"An effect is an object whose type is one of {', '.join(EFFECTS)}."
        )
    spec = EFFECTS[effect["type"]]
    extra = sorted(set(effect) - set(spec) - {"type"})
    if extra:
        raise SafeholdError("rules.invalid_effect", f"Unknown effect parameters: {', '.join(extra)}.")
    for key, (kind, required) in spec.items():
        value = effect.get(key)
        if value is None:
            if required:
                raise SafeholdError("rules.invalid_effect", f"The {effect['type']} effect needs {key!r}.")
            continue
        if not isinstance(value, kind) or not 1 <= len(value) <= 64:
            raise SafeholdError("rules.invalid_effect", f"{key!r} is a string of 1 to 64 characters.")
    if effect["type"] == "open_case" and effect["priority"] not in PRIORITIES:
        raise SafeholdError("rules.invalid_effect", f"A priority is one of {', '.join(PRIORITIES)}.")
    return {k: v for k, v in effect.items() if v is not None}


def _error(code: str, message: str, line: int | None = None, column: int | None = None) -> SafeholdError:
    detail = {"line": line, "column": column} if line is not None else {}
    where = f" (line {line}, column {column})" if line is not None else ""
    return SafeholdError(code, message + where, detail=detail)


# ------------------------------------------------------------------------------------------ compiling


@dataclass(frozen=True)
class Compiled:
    """One rule's expression, checked and compiled: the function to call and what it reads."""

    expression: str
    roots: frozenset[str]
    lists: frozenset[str]
    function: Any = field(repr=False)
    #: Run by celpy's interpreter (on its own Activation) rather than in transpiled form.
    interpreted: bool = False


def compile_expression(expression: str, list_names: Iterable[str] = ()) -> Compiled:
    """Check and compile ``expression``; a syntax, size, name or type error is a :class:`SafeholdError`
    (``rules.syntax``, ``rules.too_large``, ``rules.too_deep``, ``rules.unknown_variable``,
    ``rules.unknown_function``, ``rules.macro``, ``rules.type``) with the line and column where known."""
    if not isinstance(expression, str) or not expression.strip():
        raise _error("rules.syntax", "A rule's expression is a non-empty CEL expression.")
    if len(expression) > MAX_EXPRESSION:
        raise _error("rules.too_large", f"A rule's expression is at most {MAX_EXPRESSION} characters.")
    _check_nesting(expression)
    try:
        tree = _ENV.compile(expression)
    except CELParseError as exc:
        raise _error(
            "rules.syntax", f"Not a CEL expression: {str(exc.args[0]).splitlines()[0][:200]}", exc.line, exc.column
        ) from None
    except Exception as exc:  # lark's own errors on odd input: still a syntax error, never a crash
        raise _error("rules.syntax", f"Not a CEL expression: {type(exc).__name__}.") from None
    roots, lists, keys = _check_tree(tree, set(list_names))
    try:
        runner = _ENV.program(tree)
        body = runner.tp.source_text.replace("\nCEL = ", "\nreturn ").replace("CEL = ", "return ", 1)
        namespace: dict = {}
        code = compile("def _rule(base_activation):\n" + textwrap.indent(body, "    "), "<rule>", "exec")
        exec(code, _GLOBALS, namespace)  # celpy's own transpiled output, run in (a copy of) its module
    except RecursionError:
        raise _error("rules.too_deep", "The expression is nested too deeply.") from None
    except Exception as exc:
        raise _error("rules.syntax", f"The expression cannot be compiled: {type(exc).__name__}.") from None
    compiled = Compiled(expression, frozenset(roots), frozenset(lists), namespace["_rule"])
    sample = sample_activation(list_names, keys)
    empty = activation(Facts(), named_lists(dict.fromkeys(list_names, ())))
    interpreted = Compiled(expression, compiled.roots, compiled.lists, partial(_interpret, tree), interpreted=True)
    reference = [_run(interpreted, a) for a in (sample, empty)]
    if "has" in _functions(tree) or not all(
        _same(_run(compiled, a), r) for a, r in zip((sample, empty), reference, strict=True)
    ):
        # celpy's transpiler gets some corners wrong (``has(x.y) && ...`` when ``has`` is false); its interpreter
        # is the reference, several times slower: such a rule runs there.
        compiled = interpreted
    value = reference[0]
    if isinstance(value, Exception) and _is_type_error(value):
        raise _error("rules.type", f"The expression has a type error: {_describe(value)}.")
    if not isinstance(value, Exception) and not isinstance(value, celtypes.BoolType | bool):
        raise _error("rules.type", f"A rule's expression is true or false, not a {type(value).__name__}.")
    return compiled


def _interpret(tree, act: Any) -> Any:
    return celpy.evaluation.Evaluator(ast=tree, activation=act).evaluate()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Exception) or isinstance(b, Exception):
        return isinstance(a, Exception) and isinstance(b, Exception)
    return type(a) is type(b) and a == b


def _functions(tree) -> set[str]:
    """The functions and macros an expression calls (``has``, ``size``, ``exists``, …)."""
    out = set()
    for node in tree.iter_subtrees():
        if node.data in ("ident_arg", "dot_ident_arg"):
            out.add(str(node.children[0]))
        elif node.data == "member_dot_arg":
            out.add(str(node.children[1]))
    return out


def _check_nesting(expression: str) -> None:
    depth = 0
    for i, ch in enumerate(expression):
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise _error("rules.too_deep", f"Brackets nest at most {MAX_NESTING} deep.", 1, i + 1)
        elif ch in ")]}":
            depth -= 1
    m = _UNARY_RUN.search(expression)
    if m and sum(c in "!-" for c in m.group()) > MAX_NESTING:
        raise _error("rules.too_deep", f"At most {MAX_NESTING} unary operators in a row.", 1, m.start() + 1)


def _check_tree(tree, list_names: set[str]) -> tuple[set[str], set[str], set[str]]:
    """Walk the tree without recursion: bound its size, and collect the variables, the named lists and the
    score labels (``scores.nudity``) it reads."""
    nodes = 0
    roots: set[str] = set()
    lists: set[str] = set()
    bound: set[str] = set()
    keys: set[str] = set()
    stack = [(tree, 0)]
    idents = []
    while stack:
        node, macro_depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise _error("rules.too_large", f"The expression is larger than {MAX_NODES} syntax nodes.")
        data = getattr(node, "data", None)
        if data is None:
            continue
        depth = macro_depth
        if data == "member_dot_arg":
            method = node.children[1]
            if str(method) in MACROS:
                depth += 1
                if depth > MAX_MACRO_DEPTH:
                    raise _error(
                        "rules.macro", f"Macros nest at most {MAX_MACRO_DEPTH} deep.", method.line, method.column
                    )
                if _names_list(node.children[0]):
                    raise _error(
                        "rules.macro",
                        "A named list is a set: test it with `in`, not a macro.",
                        method.line,
                        method.column,
                    )
                args = node.children[2]
                if args is not None and args.children:
                    var = _ident_of(args.children[0])
                    if var is not None:
                        bound.add(var)
            elif str(method) not in FUNCTIONS:
                raise _error("rules.unknown_function", f"Unknown function {str(method)!r}.", method.line, method.column)
        elif data in ("ident_arg", "dot_ident_arg"):
            fn = node.children[0]
            if str(fn) not in FUNCTIONS:
                raise _error("rules.unknown_function", f"Unknown function {str(fn)!r}.", fn.line, fn.column)
        elif data == "dot_ident":
            tok = node.children[0]
            raise _error("rules.unknown_variable", f"Unknown name .{tok}.", tok.line, tok.column)
        elif data == "ident":
            idents.append(node.children[0])
        elif data == "member_object":
            raise _error("rules.syntax", "Message literals are not supported.")
        if data == "member_dot" and _ident_of(node.children[0]) in ("lists", "scores"):
            (lists if _ident_of(node.children[0]) == "lists" else keys).add(str(node.children[1]))
        for child in node.children:
            if child is not None and hasattr(child, "data"):
                stack.append((child, depth))
    for tok in idents:
        name = str(tok)
        if name in bound:
            continue
        if name not in VARIABLES:
            raise _error("rules.unknown_variable", f"Unknown variable {name!r}.", tok.line, tok.column)
        roots.add(name)
    unknown = sorted(lists - list_names)
    if unknown:
        raise _error("rules.unknown_list", f"Unknown named list {unknown[0]!r}.")
    return roots, lists, keys


def _ident_of(node) -> str | None:
    """The identifier a subtree is, if it is only one (``m`` in ``matches.exists(m, ...)``)."""
    while hasattr(node, "data") and len(node.children) == 1 and node.data != "ident":
        node = node.children[0]
    if getattr(node, "data", None) == "ident":
        return str(node.children[0])
    return None


def _names_list(node) -> bool:
    """Whether a macro's target is ``lists`` or one of its members."""
    while hasattr(node, "data") and len(node.children) == 1 and node.data not in ("ident", "member_dot"):
        node = node.children[0]
    if getattr(node, "data", None) == "member_dot":
        return _ident_of(node.children[0]) == "lists"
    return _ident_of(node) == "lists"


def _is_type_error(exc: Exception) -> bool:
    """Whether celpy's error is a type error (no overload of an operator or function for these types)."""
    return "overload" in str(exc.args[:1]) or (len(exc.args) > 1 and exc.args[1] is TypeError)


def _describe(exc: Exception) -> str:
    text = repr(exc.args[2] if len(exc.args) > 2 else exc.args)
    return text[:200]


# ------------------------------------------------------------------------------------------ the activation


def _bounded(value: Any, depth: int = 0) -> Any:
    """JSON-like ``value`` as CEL values, strings cut to MAX_STRING, lists and maps to MAX_ITEMS, depth 4."""
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(max(-(2**63), min(2**63 - 1, value)))
    if isinstance(value, float):
        return celtypes.DoubleType(value if math.isfinite(value) else 0.0)
    if isinstance(value, str):
        return celtypes.StringType(value[:MAX_STRING])
    if depth >= 4:
        return None
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_ITEMS]
        return celtypes.MapType({celtypes.StringType(str(k)[:MAX_STRING]): _bounded(v, depth + 1) for k, v in items})
    if isinstance(value, list | tuple):
        return celtypes.ListType([_bounded(v, depth + 1) for v in list(value)[:MAX_ITEMS]])
    return None


@dataclass
class Facts:
    """What the pipeline saw about one detection, as plain Python; :func:`activation` makes it CEL."""

    subject: dict = field(default_factory=dict)
    matches: list[dict] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    signals: list[dict] = field(default_factory=list)
    grooming: float = 0.0
    solicitation: float = 0.0
    age: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    account: dict = field(default_factory=dict)
    hashes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def empty(self) -> frozenset[str]:
        """The signal variables that hold nothing in this detection."""
        return frozenset(v for v in SIGNAL_VARIABLES if not getattr(self, v))


def activation(facts: Facts, lists: Mapping[str, Any]) -> Any:
    """A celpy activation for ``facts`` and the named lists (already CEL maps: :func:`named_lists`)."""
    values = {
        "subject": _bounded(
            {"kind": "content", "content_id": "", "account_id": "", "media_type": "", "door": "", **facts.subject}
        ),
        "matches": _bounded(facts.matches),
        "scores": _bounded({k: float(v) for k, v in facts.scores.items()}),
        "signals": _bounded(facts.signals),
        "grooming": celtypes.DoubleType(float(facts.grooming)),
        "solicitation": celtypes.DoubleType(float(facts.solicitation)),
        "age": _bounded({"uploader": "unknown", "reasons": [], **facts.age}),
        "report": _bounded({"present": False, "category": "", "count": 0, "trusted": False, **facts.report}),
        "account": _bounded(facts.account),
        "hashes": _bounded(facts.hashes),
        "lists": lists,
    }
    return Activation(values)


class _Fast:
    """What a transpiled rule reads its variables from: plain attributes, and a child with the macro's variable
    bound. celpy's own Activation resolves every name through a chain of containers (about 0.15 ms a name); a rule
    that needs more than this gets the real one, since the save-time comparison with the interpreter sends it there."""

    def __init__(self, values: Mapping[str, Any]):
        self.__dict__.update(values)

    def nested_activation(self, annotations: Any = None, vars: Mapping[str, Any] | None = None) -> _Fast:
        return _Fast({**self.__dict__, **(vars or {})})


class Activation:
    """One detection's variables, for both ways a rule runs: ``fast`` for the transpiled form, ``full`` (celpy's
    Activation, built on first use) for the interpreter."""

    __slots__ = ("_full", "fast", "values")

    def __init__(self, values: dict):
        self.values = values
        self.fast = _Fast(values)
        self._full = None

    @property
    def full(self) -> Any:
        if self._full is None:
            self._full = _BASE.clone()
            self._full.identifiers.load_values(self.values)
        return self._full


def named_lists(lists: Mapping[str, Iterable[str]]) -> celtypes.MapType:
    """Named lists as CEL maps (sets, :class:`NamedList`): ``x in lists.name`` is one hash lookup."""
    return celtypes.MapType(
        {
            celtypes.StringType(name): NamedList({celtypes.StringType(i): celtypes.BoolType(True) for i in items})
            for name, items in lists.items()
        }
    )


_BASE = _ENV.program(_ENV.compile("true")).tp.base_activation


def sample_activation(list_names: Iterable[str] = (), labels: Iterable[str] = ()) -> Any:
    """An activation with every variable filled in (and the score ``labels`` the rule reads), to find type errors
    at save time."""
    facts = Facts(
        subject={"kind": "content", "content_id": "c", "account_id": "a", "media_type": "image", "door": "scan"},
        matches=[{"bank": "b", "category": "csam", "distance": 0, "signal_type": "pdq", "confidence": 1.0}],
        scores={"nudity": 0.5, **dict.fromkeys(labels, 0.5)},
        signals=[{"source": "event", "category": "grooming", "confidence": 0.5, "label": "x"}],
        grooming=0.5,
        solicitation=0.5,
        age={"uploader": "13_15", "reasons": ["depicted_minor"]},
        report={"present": True, "category": "grooming", "count": 1, "trusted": False},
        account={"age_days": 1},
        hashes=["0" * 64],
    )
    return activation(facts, named_lists({name: ["x"] for name in list_names}))


def _run(compiled: Compiled, act: Activation) -> Any:
    """The rule's value, or the exception it raised (never raised further: a hostile rule cannot crash us)."""
    try:
        return compiled.function(act.full if compiled.interpreted else act.fast)
    except Exception as exc:  # celpy wraps most errors; a Python error inside its functions is one too
        return exc


# ------------------------------------------------------------------------------------------ the rule set


@dataclass(frozen=True)
class Rule:
    """One version of a rule, compiled."""

    name: str
    version: int
    status: str
    effect: dict
    owner: str
    compiled: Compiled


@dataclass(frozen=True)
class Hit:
    """A rule that matched a detection (``shadow``: it only records what it would have done)."""

    rule: str
    version: int
    effect: dict
    shadow: bool


@dataclass
class Outcome:
    """What the rule set made of one detection: the live hits, the shadow hits, and the rules that erred."""

    live: list[Hit] = field(default_factory=list)
    shadow: list[Hit] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    evaluated: int = 0


class RuleSet:
    """The live and shadow rules of one moment, compiled; replaced whole on a change, never mutated."""

    def __init__(self, rules: Iterable[Rule], lists: Mapping[str, Iterable[str]] | None = None, fingerprint=None):
        self.rules = tuple(r for r in rules if r.status in ("live", "shadow"))
        self.lists = named_lists(lists or {})
        self.fingerprint = fingerprint
        empty = activation(Facts(), self.lists)
        # A rule's value when every signal variable it reads is empty: exact, since the rest of the activation
        # (subject, age, lists) is then all it depends on... which is why a rule reading those is always run.
        self._empty = {
            r.name: _matched(_run(r.compiled, empty)) for r in self.rules if r.compiled.roots - {"lists"} <= _SKIPPABLE
        }

    def __len__(self) -> int:
        return len(self.rules)

    def evaluate(self, facts: Facts) -> Outcome:
        out = Outcome()
        if not self.rules:
            return out
        act = activation(facts, self.lists)
        empty = facts.empty()
        for r in self.rules:
            known = self._empty.get(r.name)
            if known is not None and r.compiled.roots - {"lists"} <= empty:
                matched = known
            else:
                value = _run(r.compiled, act)
                out.evaluated += 1
                if isinstance(value, Exception):
                    out.errors.append(r.name)
                    continue
                matched = _matched(value)
            if matched:
                hit = Hit(r.name, r.version, r.effect, r.status == "shadow")
                (out.shadow if hit.shadow else out.live).append(hit)
        return out


def _matched(value: Any) -> bool:
    return not isinstance(value, Exception) and isinstance(value, bool | celtypes.BoolType) and bool(value)


def evaluate_one(compiled: Compiled, facts: Facts, lists: Mapping[str, Iterable[str]]) -> tuple[bool, str | None]:
    """One rule on one detection (the backtest, the save-time check): whether it matched, and its error if any."""
    value = _run(compiled, activation(facts, named_lists(lists)))
    if isinstance(value, Exception):
        return False, _describe(value)
    return _matched(value), None
