"""Operator rules in CEL (Common Expression Language): compiled once, evaluated many times, natively.

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
- it is type-checked against the declared variables (:data:`_TYPES`), and evaluated once against a full sample
  activation at save time, so a type error (``scores.x > "a"``, or one hidden behind a ``dyn`` map value) is
  refused then, not found on a live detection.

An evaluation error at run time (a key absent from ``account``, a division by zero, an integer overflow) makes the
rule not match, and is counted; it never fails the detection. CEL's own semantics hold: ``false && error`` is
``false``.

Backend: ``cel-expr-python``, Google's Python binding of cel-cpp (the reference C++ implementation, Apache-2.0,
maintained by the CEL team alongside cel-go and cel-java). Chosen over ``common-expression-language`` (Python
bindings of the Rust ``cel`` crate, also Apache-2.0) because it has CEL's type checker (declared
variables, overload resolution: unknown names and type errors are refused at save time with a line and column,
where the Rust binding checks nothing before evaluation), RE2 for ``matches()``, returns an evaluation error
(overflow, division by zero, a missing key, a bad pattern) as a value rather than raising, and bounds its own
parser and checker recursion. Per call the two cost about the same from Python (a few microseconds; the Rust one
converts every value of its context eagerly, the C++ one on first use). cel-python (celpy, pure Python, 100–170 µs a
rule, with bugs the old engine worked around) is kept only as the parser of the structural checks above (the
native binding exposes no syntax tree); it never evaluates. The binding has no evaluation budget, so the static
bounds above are what bound a rule's cost.

Speed: one native call costs a few microseconds from Python, more than the rule itself, so rules are evaluated in
*batches* compiled into one CEL list expression (``[(rule1), (rule2), …]``) evaluated once per detection against one
shared activation; and most rules are not run at all. A rule whose expression is a chain of ``&&`` with one operand
of a known shape — ``matches.exists(m, m.bank == "x" && …)``, ``"nudity" in scores && scores.nudity > 0.9``,
``grooming > 0.7``, ``report.category == "sextortion"``, ``subject.account_id in lists.watched``,
``size(signals) >= 2`` … — has a *guard* (:func:`_guard`): Python tests it on the detection's bounded values with a
dictionary lookup or a comparison, and only when it is not exactly false does the rule's batch run (rules are grouped
and indexed by guard; thresholds sorted, so a scan stops at the first one out of reach). A guard never decides a
match: CEL does, on the whole rule; and a rule that may err (an absent key, a value of another type) still runs, so
its error is counted as before. The other rules are grouped by the signal variables they read, and a group whose
every signal variable is empty is not run (its rules' values on an empty activation are computed at compile time and
are exact). CEL makes a list with one erring element an error, so a batch that errs is evaluated again rule by rule
(per-rule error isolation is kept; only the erring detection pays for it). Named lists stay out of the activation:
a test of a fixed place of the detection (``subject.account_id``, a hash, a signal's label) reads a per-detection
map of the detection's values there that are in the list (:func:`_listed`); any other ``x in lists.name`` is
rewritten into a call of a Python set lookup (:func:`_list_tests`), since cel-cpp would copy a 100,000-item list
into its own map on every detection.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress, islice
from typing import Any

from cel_expr_python import cel
from celpy.celparser import CELParseError, CELParser

from safehold.errors import SafeholdError

MAX_EXPRESSION = 4096
MAX_NESTING = 24
MAX_NODES = 3000
MAX_MACRO_DEPTH = 2
MAX_ITEMS = 64
MAX_STRING = 1024
MAX_LIST_ITEMS = 100_000
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

_DYN_MAP = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
#: The declared CEL type of each variable (:data:`VARIABLES`), for the type checker.
_TYPES = {
    "subject": _DYN_MAP,
    "matches": cel.Type.List(_DYN_MAP),
    "scores": cel.Type.Map(cel.Type.STRING, cel.Type.DOUBLE),
    "signals": cel.Type.List(_DYN_MAP),
    "grooming": cel.Type.DOUBLE,
    "solicitation": cel.Type.DOUBLE,
    "age": _DYN_MAP,
    "report": _DYN_MAP,
    "account": _DYN_MAP,
    "hashes": cel.Type.List(cel.Type.STRING),
    "lists": cel.Type.Map(cel.Type.STRING, cel.Type.Map(cel.Type.STRING, cel.Type.BOOL)),
}
_LISTS = threading.local()
_CEL = cel.NewEnv(
    variables=_TYPES,
    functions=[
        cel.FunctionDecl(
            "safehold_in_list",
            [cel.Overload("safehold_in_list_string_string", cel.Type.BOOL, [cel.Type.STRING, cel.Type.STRING])],
        )
    ],
    function_impls={"safehold_in_list_string_string": lambda name, item: _in_list(name, item)},
)
_PARSER = CELParser()
_ERROR = cel.Type.ERROR
_BOOLEAN = (cel.Type.BOOL, cel.Type.DYN)
#: Where cel-cpp's compile errors say they are: ``<input>:line:column: message``.
_WHERE = re.compile(r"<input>:(\d+):(\d+): ([^\n]*)")
#: Rules per batch (one CEL list expression): bounds the size of what is compiled and of what one error reruns.
MAX_BATCH = 64
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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


class EvalError(Exception):
    """A rule's evaluation error: cel-cpp returns it as a value, kept here as this (never raised)."""


@dataclass(frozen=True)
class Compiled:
    """One rule's expression, checked and compiled: the native program and what it reads."""

    expression: str
    roots: frozenset[str]
    lists: frozenset[str]
    program: Any = field(repr=False)
    #: What cel-cpp runs: the expression with each ``x in lists.name`` a call of :func:`_in_list`.
    source: str = ""
    #: A conjunct Python can test before cel-cpp runs (:func:`_guard`), or ``None``.
    guard: tuple | None = None
    #: The named-list tests of fixed places kept as CEL's own ``in`` (:func:`_list_tests`).
    listed: frozenset = frozenset()


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
        expression.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate: not text cel-cpp can take
        raise _error("rules.syntax", "A rule's expression is Unicode text.", 1, exc.start + 1) from None
    try:
        tree = _PARSER.parse(expression)
    except CELParseError as exc:
        raise _error(
            "rules.syntax", f"Not a CEL expression: {str(exc.args[0]).splitlines()[0][:200]}", exc.line, exc.column
        ) from None
    except Exception as exc:  # lark's own errors on odd input: still a syntax error, never a crash
        raise _error("rules.syntax", f"Not a CEL expression: {type(exc).__name__}.") from None
    roots, lists, keys = _check_tree(tree, set(list_names))
    source, listed = _list_tests(tree, expression)
    checked = _native(expression)  # its errors' lines and columns are the operator's
    if checked.return_type() not in _BOOLEAN:
        raise _error("rules.type", f"A rule's expression is true or false, not a {checked.return_type().name()}.")
    program = _native(source) if source != expression else checked
    compiled = Compiled(expression, frozenset(roots), frozenset(lists), program, source, _guard(tree), listed)
    value = _run(compiled, sample_activation(list_names, keys))
    if isinstance(value, EvalError) and _is_type_error(value):
        raise _error("rules.type", f"The expression has a type error: {_describe(value)}.")
    if not isinstance(value, EvalError | bool):
        raise _error("rules.type", f"A rule's expression is true or false, not a {type(value).__name__}.")
    return compiled


def _native(expression: str) -> Any:
    """cel-cpp's parse and type check of an expression the structural checks passed."""
    try:
        return _CEL.compile(expression)
    except Exception as exc:  # the binding raises RuntimeError with cel-cpp's status text
        text = str(exc)
    if "recursion" in text:
        raise _error("rules.too_deep", "The expression is nested too deeply.")
    where = _WHERE.search(text)
    message = (where.group(3) if where else text.splitlines()[0] if text else "")[:200]
    if "Syntax error" in message:
        code = "rules.syntax"
    elif "undeclared reference" in message:
        code = "rules.unknown_variable"
    else:
        code = "rules.type"
    line, column = (int(where.group(1)), int(where.group(2))) if where else (None, None)
    raise _error(code, f"The expression is refused: {message}", line, column)


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


def _computed(target) -> bool:
    """Whether a macro's target holds a ``+`` (list concatenation): the one way a target grows beyond the
    activation's bounded lists and the expression's own literals."""
    stack = [target]
    while stack:
        node = stack.pop()
        if node.data == "addition_add":
            return True
        stack.extend(c for c in node.children if c is not None and hasattr(c, "data"))
    return False


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
                if _computed(node.children[0]):
                    raise _error(
                        "rules.macro",
                        "A macro runs over a variable or a list literal, not a list computed with `+` (two nested "
                        "macros over concatenated lists multiply into millions of steps).",
                        method.line,
                        method.column,
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


def _list_tests(tree, expression: str) -> tuple[str, frozenset[tuple[str, tuple[str, str] | None]]]:
    """``expression`` with every ``x in lists.name`` rewritten as ``safehold_in_list("name", x)``, a hash lookup in
    Python's set of the list (:func:`_in_list`): cel-cpp converts a Python map of an activation to its own on first
    use, which for named lists of 100,000 items is milliseconds on every detection. A named list is used in no
    other way (its size, its keys), so every use of ``lists`` must be such a test.

    A test of a fixed place of the detection — ``subject.account_id in lists.name``, or ``h in lists.name`` where
    ``h`` ranges over ``hashes`` — is kept as written, and returned as ``(name, (map, field))`` or ``(name, None)``:
    the activation's ``lists`` then holds, for each such list, the detection's own values at those places that are
    in it (:func:`_listed`), a map of a few keys, so the test is CEL's own ``in`` with no call back into Python."""
    tests = []
    uses = 0
    binders: dict[str, set[str | None]] = {}
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg" and str(node.children[1]) in MACROS:
            args = node.children[2]
            var = _ident_of(args.children[0]) if args is not None and args.children else None
            target = node.children[0]
            if var is not None:
                binders.setdefault(var, set()).add(
                    _ident_of(target) if getattr(_strip(target), "data", None) == "ident" else None
                )
    for node in tree.iter_subtrees():
        if node.data == "ident" and str(node.children[0]) == "lists":
            uses += 1
        elif (
            node.data == "relation"
            and len(node.children) == 2
            and getattr(node.children[0], "data", "") == "relation_in"
        ):
            name = _list_member(node.children[1])
            left = node.children[0].children[0]
            if name is not None:
                tests.append(
                    (node.meta.start_pos, node.meta.end_pos, left.meta.start_pos, left.meta.end_pos, name, left)
                )
    tests.sort(key=lambda t: t[:5])
    nested = any(b[0] < a[1] for a, b in zip(tests, tests[1:], strict=False))
    if uses != len(tests) or nested:
        raise _error("rules.macro", "A named list is only tested with `x in lists.name` (not nested in another).")
    fixed = set()
    for start, end, left_start, left_end, name, left in reversed(tests):
        place = _field(left)
        var = _ident_of(left) if getattr(_strip(left), "data", None) == "ident" else None
        if place is not None and place[0] in _FIELD_MAPS and place[0] not in binders:
            fixed.add((name, place))
        elif place is not None and len(binders.get(place[0], ())) == 1 and binders[place[0]] <= _ELEMENT_LISTS:
            fixed.add((name, (next(iter(binders[place[0]])), place[1])))  # ``s.label`` of ``signals.exists(s, …)``
        elif var is not None and binders.get(var) == {"hashes"}:
            fixed.add((name, None))
        else:
            call = f"safehold_in_list({json.dumps(name)}, {expression[left_start:left_end]})"
            expression = expression[:start] + call + expression[end:]
    return expression, frozenset(fixed)


def _list_member(node) -> str | None:
    """The name of the list an expression is, if it is exactly ``lists.name``."""
    while hasattr(node, "data") and len(node.children) == 1:
        node = node.children[0]
    if getattr(node, "data", None) == "member_dot" and _ident_of(node.children[0]) == "lists":
        return str(node.children[1])
    return None


# ------------------------------------------------------------------------------------------ guards
#
# A rule ``a && b && …`` is false as soon as one of its conjuncts is false, whatever the others are (CEL's ``&&``
# is commutative: ``error && false`` is false too). So one conjunct of a known, simple shape is a *guard*: Python
# tests it on the detection's bounded values (:func:`_values`) with a dictionary lookup or a comparison, before any
# call into cel-cpp, and when it is exactly false the rule is false and is not run. When it may be true — or may
# be an error: a key absent from a map, a value of another type — the whole rule runs in CEL, which alone decides;
# so a guard changes neither a rule's value nor whether its error is counted, only which rules are run.

#: Maps whose fields a guard reads (``scores`` only for keys and thresholds: its values are doubles).
_FIELD_MAPS = frozenset({"subject", "age", "report", "account"})
_KEY_MAPS = _FIELD_MAPS | {"scores"}
_SCALARS = frozenset({"grooming", "solicitation"})
_ELEMENT_LISTS = frozenset({"matches", "signals"})
_PASS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member",
     "primary", "paren_expr"}
)  # fmt: skip
_PLAIN_STRING = re.compile(r"""^(?:"([^"\\\n\r]*)"|'([^'\\\n\r]*)')$""")
_PLAIN_DOUBLE = re.compile(r"^[0-9]+\.[0-9]+$")
_PLAIN_INT = re.compile(r"^[0-9]{1,18}$")
#: A comparison as a bound on the left operand (``>`` as ``>=``: a guard may let through more, never fewer), and
#: the same with the operands swapped.
_BOUNDS = {"relation_gt": "ge", "relation_ge": "ge", "relation_lt": "le", "relation_le": "le"}
_SWAPPED = {"relation_gt": "le", "relation_ge": "le", "relation_lt": "ge", "relation_le": "ge"}
#: The list variables whose size a guard may bound (``size(signals) >= 2``).
_SIZED = frozenset({"matches", "signals", "hashes"})


def _strip(node):
    """``node`` without the grammar's single-child wrappers (``expr`` → … → ``primary``, parentheses)."""
    while getattr(node, "data", None) in _PASS and len(node.children) == 1 and hasattr(node.children[0], "data"):
        node = node.children[0]
    return node


def _conjuncts(node) -> list:
    """The operands of a top-level chain of ``&&`` (one operand when there is none)."""
    out, stack = [], [node]
    while stack:
        node = _strip(stack.pop())
        if getattr(node, "data", None) == "conditionaland" and len(node.children) == 2:
            stack.extend(reversed(node.children))
        else:
            out.append(node)
    return out


def _field(node) -> tuple[str, str] | None:
    """``(name, field)`` if ``node`` is exactly ``name.field`` (``account.age_days``, ``m.bank``)."""
    node = _strip(node)
    if getattr(node, "data", None) == "member_dot" and len(node.children) == 2:
        name = _ident_of(node.children[0])
        if name is not None and _strip(node.children[0]).data == "ident":
            return name, str(node.children[1])
    return None


def _literal(node) -> str | float | int | None:
    """A plain string literal (no escapes, no prefix), a plain decimal double or a decimal int literal, else
    ``None``."""
    node = _strip(node)
    if getattr(node, "data", None) != "literal":
        return None
    text = str(node.children[0])
    m = _PLAIN_STRING.match(text)
    if m:
        return m.group(1) if m.group(1) is not None else m.group(2)
    if _PLAIN_DOUBLE.match(text):
        return float(text)
    if _PLAIN_INT.match(text):
        return int(text)
    return None


def _atom(node) -> tuple | None:
    """The guard one conjunct gives, if it has one of the shapes a guard knows."""
    data = getattr(node, "data", None)
    if data == "member_dot":  # a bare ``report.present``: true only if the field is true
        f = _field(node)
        return ("field", f[0], f[1], True) if f and f[0] in _FIELD_MAPS else None
    if data == "ident_arg":
        fn, args = node.children
        if str(fn) == "has" and args is not None and len(args.children) == 1:
            f = _field(args.children[0])
            if f and f[0] in _KEY_MAPS:
                return ("key", f[0], f[1], None, True)
        return None
    if data == "member_dot_arg":
        return _exists(node)
    if data != "relation" or len(node.children) != 2 or not hasattr(node.children[0], "data"):
        return None
    op, left, right = node.children[0].data, node.children[0].children[0], node.children[1]
    if op == "relation_in":
        name = _list_member(right)
        f = _field(left)
        if name is not None:
            return ("inlist", f, name) if f and f[0] in _FIELD_MAPS else None
        key, target = _literal(left), _ident_of(right)
        if isinstance(key, str) and target in _KEY_MAPS and _strip(right).data == "ident":
            return ("key", target, key, None, True)
    if op in ("relation_gt", "relation_ge"):
        bound = _literal(right)
        scalar = _ident_of(left) if _strip(left).data == "ident" else None
        if scalar in _SCALARS and isinstance(bound, float):
            return ("scalar", scalar, bound)
        sized = _sized(left)
        if sized is not None and type(bound) is int:  # ``size(signals) > 1``: at least two signals
            return ("size", sized, bound + (op == "relation_gt"))
    if op in _BOUNDS:  # ``account.age_days < 3``: false when the value is an int of 3 or more (an error if absent)
        for a, b, direction in ((left, right, _BOUNDS[op]), (right, left, _SWAPPED[op])):
            f, bound = _field(a), _literal(b)
            if f and f[0] in _KEY_MAPS and isinstance(bound, float | int):
                return ("key", f[0], f[1], (direction, bound), False)
    if op == "relation_eq":
        for a, b in ((left, right), (right, left)):
            f, value = _field(a), _literal(b)
            if f and f[0] in _FIELD_MAPS and isinstance(value, str):
                return ("field", f[0], f[1], value)
    return None


def _sized(node) -> str | None:
    """``name`` if ``node`` is exactly ``size(name)`` of a list variable."""
    node = _strip(node)
    if getattr(node, "data", None) != "ident_arg" or str(node.children[0]) != "size":
        return None
    args = node.children[1]
    if args is None or len(args.children) != 1 or _strip(args.children[0]).data != "ident":
        return None
    name = _ident_of(args.children[0])
    return name if name in _SIZED else None


def _exists(node) -> tuple | None:
    """``matches.exists(m, m.bank == "x" && …)`` (true only if some match's bank is ``"x"``) and
    ``hashes.exists(h, h in lists.name)`` (true only if one of the hashes is in the list)."""
    target, method, args = node.children
    name = _ident_of(target)
    if str(method) != "exists" or _strip(target).data != "ident" or args is None or len(args.children) != 2:
        return None
    var = _ident_of(args.children[0])
    if var is None or var in VARIABLES:
        return None
    for c in _conjuncts(args.children[1]):
        if getattr(c, "data", None) != "relation" or len(c.children) != 2 or not hasattr(c.children[0], "data"):
            continue
        op, left, right = c.children[0].data, c.children[0].children[0], c.children[1]
        if name == "hashes" and op == "relation_in" and _strip(left).data == "ident" and _ident_of(left) == var:
            listed = _list_member(right)
            if listed is not None:
                return ("inlist", None, listed)
        if name in _ELEMENT_LISTS and op == "relation_in":  # ``signals.exists(s, s.label in lists.terms)``
            f, listed = _field(left), _list_member(right)
            if f and f[0] == var and listed is not None:
                return ("inlist", (name, f[1]), listed)
        if name in _ELEMENT_LISTS and op == "relation_eq":
            for a, b in ((left, right), (right, left)):
                f, value = _field(a), _literal(b)
                if f and f[0] == var and isinstance(value, str):
                    return ("element", name, f[1], value)
    return None


def _group(guard: tuple) -> tuple:
    """The index entry of a guard: thresholds apart, and bounds of each direction and type apart."""
    if guard[0] in ("scalar", "size"):
        return guard[:2]
    if guard[0] == "key":
        test = guard[3]
        return guard[:3] + ((None, None) if test is None else (test[0], type(test[1]))) + guard[4:]
    return guard


def _threshold(guard: tuple) -> float | int:
    return guard[2] if guard[0] in ("scalar", "size") else guard[3][1]


_ABSENT = object()


def _guard(tree) -> tuple | None:
    """The most selective guard among the rule's top-level conjuncts (:func:`_rank`), or ``None``.

    A key guard is ``("key", map, key, bound, strict)``: ``strict`` when the rule also tests that the key is there
    (``"age_days" in account && account.age_days < 3``), so that its absence makes the rule false, not an error."""
    atoms = [a for a in map(_atom, _conjuncts(tree)) if a is not None]
    present = {a[1:3] for a in atoms if a[0] == "key" and a[4]}
    atoms = [a[:4] + (True,) if a[0] == "key" and a[1:3] in present else a for a in atoms]
    return min(atoms, key=_rank) if atoms else None


def _rank(atom: tuple) -> int:
    """How selective a guard usually is (lowest first): a named list, a value in a list of maps, a list of two or
    more, a field's string, a bound on a key that must be there, a risk's threshold or a field that must be true, a
    bound on a key that may be absent (then the rule runs), a key that must be there, a list that is not empty."""
    kind = atom[0]
    if kind == "key":
        return 4 if atom[3] is not None and atom[4] else 6 if atom[3] is not None else 7
    if kind == "size":
        return 2 if atom[2] >= 2 else 8
    if kind == "field":  # a string, or a bare ``report.present`` (true on every report)
        return 3 if atom[3] is not True else 5
    return {"inlist": 0, "element": 1, "scalar": 5}[kind]


def _in_list(name: str, item: str) -> bool:
    """``item in lists.name`` for the named lists of the evaluation running on this thread (:func:`_value`)."""
    return item in _LISTS.sets.get(name, ())


def _is_type_error(exc: EvalError) -> bool:
    """Whether an evaluation error is a type error (no overload of an operator or function for these types)."""
    return "overload" in str(exc).lower()


def _describe(exc: Exception) -> str:
    return str(exc)[:200]


# ------------------------------------------------------------------------------------------ the activation


def _bounded(value: Any, depth: int = 0) -> Any:
    """JSON-like ``value`` as plain CEL-ready values: strings cut to MAX_STRING, lists and maps to MAX_ITEMS,
    depth 4, integers clamped to int64, non-finite doubles 0. Built for every detection, so the exact built-in
    types take a short path first (``type(x) is``) and anything else (a subclass, a tuple) the general one."""
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_STRING else value[:MAX_STRING]
    if kind is float:
        return value if math.isfinite(value) else 0.0
    if kind is bool:
        return value
    if kind is int:
        return value if _INT64_MIN <= value <= _INT64_MAX else max(_INT64_MIN, min(_INT64_MAX, value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _bounded(int(value))
    if isinstance(value, float):
        return _bounded(float(value))
    if isinstance(value, str):
        return _bounded(str(value))
    if depth >= 4:
        return None
    if isinstance(value, Mapping):
        items = value.items() if len(value) <= MAX_ITEMS else islice(value.items(), MAX_ITEMS)
        return {
            (k if type(k) is str and len(k) <= MAX_STRING else str(k)[:MAX_STRING]): _bounded(v, depth + 1)
            for k, v in items
        }
    if isinstance(value, list | tuple):
        return [_bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
    return None


def _flat(value: Mapping, depth: int = 0) -> dict:
    """``_bounded(value)`` for a map, with a short path for the usual one: at most MAX_ITEMS string keys, each
    value a short string, a bool, a finite double or an int64 (then it is already what :func:`_bounded` makes)."""
    if type(value) is dict and len(value) <= MAX_ITEMS:  # noqa: E721
        for k, v in value.items():
            t = type(v)
            if not (
                type(k) is str  # noqa: E721
                and len(k) <= MAX_STRING
                and (
                    (t is str and len(v) <= MAX_STRING)
                    or t is bool
                    or (t is float and -math.inf < v < math.inf)
                    or (t is int and _INT64_MIN <= v <= _INT64_MAX)
                )
            ):
                break
        else:
            return value
    return _bounded(value, depth)


def _double(value: Any) -> float:
    """A score or risk as a finite double (0 for anything else: a rule never sees NaN or a string)."""
    if type(value) is float and -math.inf < value < math.inf:  # noqa: E721 -- the usual case, first
        return value
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return value if math.isfinite(value) else 0.0


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


#: ``report`` when the detection has no user report (shared by every such activation, never mutated).
_NO_REPORT = {"present": False, "category": "", "count": 0, "trusted": False}


def activation(
    facts: Facts, lists: Mapping[str, frozenset[str]], places: Mapping[str, Iterable] | None = None
) -> tuple[Any, Mapping[str, frozenset[str]]]:
    """A native activation for ``facts``, every value of its declared type (:data:`_TYPES`), built once per
    detection and shared by every rule, with the named lists (:func:`named_lists`) its list tests read (``places``:
    :func:`_listed`). It is used on the thread that built it (cel-cpp's arena is per thread)."""
    values = _values(facts)
    values["lists"] = _listed(values, lists, places)
    return _CEL.Activation(values), lists


def _listed(
    values: dict[str, Any], lists: Mapping[str, frozenset[str]], places: Mapping[str, Iterable] | None
) -> dict[str, dict[str, bool]]:
    """The ``lists`` a detection's rules see: for each named list they test at fixed places (:func:`_list_tests`;
    ``places``: list name -> ``(map, field)`` or ``None`` for ``hashes``), the detection's values at those places
    that are in it. ``None``: every list, against every string at every such place (a superset: the same
    answers)."""
    if places is None:
        found = [v for m in _FIELD_MAPS for v in values[m].values() if type(v) is str]  # noqa: E721
        found += [v for m in _ELEMENT_LISTS for item in values[m] for v in item.values() if type(v) is str]  # noqa: E721
        found += values["hashes"]
        return {name: {v: True for v in found if v in members} for name, members in lists.items()}
    out = {}
    for name, where in places.items():
        members = lists.get(name, ())
        listed = {}
        for place in where:
            if place is None:
                listed.update((h, True) for h in values["hashes"] if h in members)
            elif place[0] in _ELEMENT_LISTS:
                for item in values[place[0]]:
                    value = item.get(place[1])
                    if type(value) is str and value in members:  # noqa: E721
                        listed[value] = True
            else:
                value = values[place[0]].get(place[1])
                if type(value) is str and value in members:  # noqa: E721
                    listed[value] = True
        out[name] = listed
    return out


def _values(facts: Facts) -> dict[str, Any]:
    """The activation's values as plain, bounded Python: what cel-cpp converts, and what the guards read."""
    return {
        "subject": _flat(
            {"kind": "content", "content_id": "", "account_id": "", "media_type": "", "door": "", **facts.subject}
        ),
        "matches": [_flat(m, 1) if isinstance(m, Mapping) else {} for m in facts.matches[:MAX_ITEMS]],
        "scores": {str(k)[:MAX_STRING]: _double(v) for k, v in list(facts.scores.items())[:MAX_ITEMS]},
        "signals": [_flat(s, 1) if isinstance(s, Mapping) else {} for s in facts.signals[:MAX_ITEMS]],
        "grooming": _double(facts.grooming),
        "solicitation": _double(facts.solicitation),
        "age": _bounded({"uploader": "unknown", "reasons": [], **facts.age}),
        "report": _flat({**_NO_REPORT, **facts.report}) if facts.report else _NO_REPORT,
        "account": _flat(facts.account) if facts.account else {},
        "hashes": [str(h)[:MAX_STRING] for h in facts.hashes[:MAX_ITEMS]],
    }


def named_lists(lists: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Named lists as sets: ``x in lists.name`` is one hash lookup (:func:`_list_tests`)."""
    return {str(name): frozenset(map(str, items)) for name, items in lists.items()}


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


def _run(compiled: Compiled, act: tuple[Any, Mapping[str, frozenset[str]]]) -> Any:
    """The rule's value as plain Python, or an :class:`EvalError` (never raised: a hostile rule cannot crash us)."""
    return _value(compiled.program, act)


def _value(program: Any, act: tuple[Any, Mapping[str, frozenset[str]]]) -> Any:
    native, _LISTS.sets = act
    try:
        value = program.eval(native)
        if value.type() == _ERROR:
            return EvalError(str(value.value())[:200])
        return value.plain_value()
    except Exception as exc:  # the binding raises for a few errors (a duplicate key in a map literal)
        return EvalError(f"{type(exc).__name__}: {str(exc)[:200]}")


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


@dataclass(frozen=True)
class _Batch:
    """Rules that read the same signal variables, run as one CEL list expression (``program``; ``None`` when it
    would not compile, then rule by rule). ``known``: the positions of its rules that match when every signal
    variable they read is empty (``None`` when they read an always-present variable and are always run).
    ``typed``: every rule's checked type is bool, so the list's values are exactly true or false."""

    positions: tuple[int, ...]
    roots: frozenset[str]
    known: tuple[int, ...] | None
    program: Any = field(repr=False)
    typed: bool = False
    #: Guarded batches on a threshold: the lowest threshold of its rules (none of them can hold below it).
    bound: float | None = None
    #: Every variable its rules read, ``lists`` included: what the native activation must hold for it.
    reads: frozenset[str] = frozenset()


#: Rules per guarded batch on a threshold (``grooming > 0.7``): sorted by threshold, so a detection runs only the
#: batches whose lowest threshold its value reaches, and at most this many rules that cannot hold.
_THRESHOLD_BATCH = 16


class RuleSet:
    """The live and shadow rules of one moment, compiled; replaced whole on a change, never mutated.

    Rules with a guard (:func:`_guard`) are grouped by it and indexed: a detection looks up which groups its values
    can satisfy (one dictionary lookup or comparison per group kind) and runs only their batches. The other rules
    are grouped by the signal variables they read, and a group whose signals are all empty is not run."""

    def __init__(self, rules: Iterable[Rule], lists: Mapping[str, Iterable[str]] | None = None, fingerprint=None):
        self.rules = tuple(r for r in rules if r.status in ("live", "shadow"))
        self.lists = named_lists(lists or {})
        self.fingerprint = fingerprint
        #: Skip the rules that cannot hold (off only in tests and the benchmark, to show what the skip is worth).
        self.skip = True
        self._hits = tuple(Hit(r.name, r.version, r.effect, r.status == "shadow") for r in self.rules)
        #: Named list -> the fixed places the rules test against it (:func:`_listed`).
        self._places: dict[str, tuple] = {}
        for r in self.rules:
            for name, place in r.compiled.listed:
                if place not in self._places.get(name, ()):
                    self._places[name] = (*self._places.get(name, ()), place)
        empty = activation(Facts(), self.lists, self._places)
        plain: dict[frozenset[str], list[int]] = {}
        guarded: dict[tuple, list[int]] = {}
        for i, r in enumerate(self.rules):
            g = r.compiled.guard
            if g is None:
                plain.setdefault(r.compiled.roots - {"lists"}, []).append(i)
            else:
                guarded.setdefault(_group(g), []).append(i)
        self._batches: list[_Batch] = []
        self._plain: list[_Batch] = []
        for roots, positions in plain.items():
            for start in range(0, len(positions), MAX_BATCH):
                part = tuple(positions[start : start + MAX_BATCH])
                # A rule's value when every signal variable it reads is empty: exact, since the rest of the
                # activation (subject, age, lists) is then all it depends on... which is why a rule reading those
                # is always run.
                known = None
                if roots <= _SKIPPABLE:
                    known = tuple(i for i in part if _matched(_run(self.rules[i].compiled, empty)))
                self._plain.append(self._batch(part, known))
        self._elements: dict[tuple[str, str], dict[str, list[_Batch]]] = {}
        #: map -> key -> [(direction of the bound or None, the bound's type, strict (:func:`_guard`), batches)]
        self._keys: dict[str, dict[str, list[tuple[str | None, type | None, bool, list[_Batch]]]]] = {}
        self._fields: dict[tuple[str, str], dict[Any, list[_Batch]]] = {}
        self._scalars: dict[str, list[_Batch]] = {}
        self._sizes: dict[str, list[_Batch]] = {}
        self._inlists: list[tuple[tuple[str, str] | None, str, list[_Batch]]] = []
        for key, positions in guarded.items():
            kind = key[0]
            direction = "ge" if kind in ("scalar", "size") else key[3] if kind == "key" else None
            size = MAX_BATCH
            if direction is not None:  # by threshold, the easiest to reach first: a scan stops at the first miss
                positions.sort(key=lambda i: _threshold(self.rules[i].compiled.guard), reverse=direction == "le")
                size = _THRESHOLD_BATCH
            batches = []
            for start in range(0, len(positions), size):
                part = tuple(positions[start : start + size])
                bound = _threshold(self.rules[part[0]].compiled.guard) if direction is not None else None
                batches.append(self._batch(part, None, bound))
            if kind == "element":
                self._elements.setdefault(key[1:3], {})[key[3]] = batches
            elif kind == "key":
                self._keys.setdefault(key[1], {}).setdefault(key[2], []).append((direction, key[4], key[5], batches))
            elif kind == "field":
                self._fields.setdefault(key[1:3], {})[key[3]] = batches
            elif kind == "scalar":
                self._scalars[key[1]] = batches
            elif kind == "size":
                self._sizes[key[1]] = batches
            else:
                self._inlists.append((key[1], key[2], batches))
            self._batches.extend(batches)
        self._batches.extend(self._plain)
        #: The maps whose key guards are all strict: a detection's absent keys then run nothing.
        self._strict = frozenset(
            m for m, by_key in self._keys.items() if all(e[2] for entries in by_key.values() for e in entries)
        )

    def _batch(self, part: tuple[int, ...], known: tuple[int, ...] | None, bound: float | None = None) -> _Batch:
        reads = frozenset().union(*(self.rules[i].compiled.roots for i in part))
        typed = all(self.rules[i].compiled.program.return_type() == cel.Type.BOOL for i in part)
        return _Batch(part, reads - {"lists"}, known, self._program(part), typed, bound, reads)

    def _program(self, positions: tuple[int, ...]) -> Any:
        """One CEL list of the rules' expressions (each on its own lines, so a trailing ``//`` comment ends
        there), or ``None`` for a single rule or when cel-cpp refuses the whole."""
        if len(positions) < 2:
            return None
        source = "[" + ",".join(f"(\n{self.rules[i].compiled.source}\n)" for i in positions) + "]"
        try:
            return _CEL.compile(source)
        except Exception:  # every rule compiled alone: they still run, one by one
            return None

    def __len__(self) -> int:
        return len(self.rules)

    def _candidates(self, values: dict[str, Any]) -> list[_Batch]:
        """The guarded batches whose guard is not exactly false on ``values`` (:func:`_guard`): each test reads the
        bounded values cel-cpp would see, and an absent key or a value of another type only ever adds batches."""
        run: list[_Batch] = []
        for (name, key), by_value in self._elements.items():
            seen = set()
            for item in values[name]:
                value = item.get(key, _ABSENT)
                if type(value) is not str:  # noqa: E721 -- absent or not a string: the predicate may err
                    seen = by_value
                    break
                seen.add(value)
            for value in seen:
                run.extend(by_value.get(value, ()))
        for name, by_key in self._keys.items():
            present = values[name]
            if name in self._strict and len(present) < len(by_key):  # absent keys add nothing: read what is there
                keys = [k for k in present if k in by_key]
            else:
                keys = by_key
            for key in keys:
                entries = by_key[key]
                value = present.get(key, _ABSENT)
                for direction, kind, strict, batches in entries:
                    if value is _ABSENT:
                        if not strict:  # ``account.x < 3`` without ``has(account.x)``: an error, counted
                            run.extend(batches)
                    elif direction is None or type(value) is not kind:  # a bound of another type: no pruning
                        run.extend(batches)
                    else:
                        for batch in batches:  # sorted: the first one out of reach ends the scan
                            if not (value >= batch.bound if direction == "ge" else value <= batch.bound):
                                break
                            run.append(batch)
        for (name, key), by_value in self._fields.items():
            value = values[name].get(key, _ABSENT)
            if type(value) is str:  # noqa: E721
                run.extend(by_value.get(value, ()))
                run.extend(by_value.get(True, ()))  # a bare ``report.x`` on a string: an error, counted
            elif value is not False:  # absent, true, or another type: every one may be true or err
                for batches in by_value.values():
                    run.extend(batches)
            else:  # false: the bare tests are false, the comparisons with a string may err
                for literal, batches in by_value.items():
                    if literal is not True:
                        run.extend(batches)
        for name, batches in self._scalars.items():
            value = values[name]
            for batch in batches:
                if not value >= batch.bound:
                    break
                run.append(batch)
        for name, batches in self._sizes.items():
            size = len(values[name])
            for batch in batches:
                if size < batch.bound:
                    break
                run.append(batch)
        for path, name, batches in self._inlists:
            members = self.lists.get(name, ())
            if path is None:
                hit = any(h in members for h in values["hashes"])
            elif path[0] in _ELEMENT_LISTS:  # an element whose field is absent or not a string may err
                hit = any(
                    type(v := item.get(path[1], _ABSENT)) is not str or v in members  # noqa: E721
                    for item in values[path[0]]
                )
            else:
                value = values[path[0]].get(path[1], _ABSENT)
                hit = type(value) is not str or value in members  # noqa: E721 -- else it errs
            if hit:
                run.extend(batches)
        return run

    def evaluate(self, facts: Facts) -> Outcome:
        out = Outcome()
        if not self.rules:
            return out
        values = _values(facts)
        matched: list[int] = []
        errors: list[int] = []
        if self.skip:
            run = self._candidates(values)
            empty = facts.empty()
            for batch in self._plain:
                if batch.known is not None and batch.roots <= empty:
                    matched.extend(batch.known)
                else:
                    run.append(batch)
        else:
            run = self._batches
        if run:
            # Only the variables the batches read: cel-cpp's activation costs by the variable, used or not.
            reads = run[0].reads.union(*(batch.reads for batch in run[1:])) if len(run) > 1 else run[0].reads
            data = {name: values[name] for name in reads if name != "lists"}
            if "lists" in reads:
                data["lists"] = _listed(values, self.lists, self._places)
            act = (_CEL.Activation(data), self.lists)
        for batch in run:
            out.evaluated += len(batch.positions)
            result = _value(batch.program, act) if batch.program is not None else None
            if not isinstance(result, list) or len(result) != len(batch.positions):
                # A single rule, or a batch with an erring rule (CEL makes the whole list an error): rule by rule.
                result = [_run(self.rules[i].compiled, act) for i in batch.positions]
                errors.extend(i for i, v in zip(batch.positions, result, strict=True) if isinstance(v, EvalError))
            elif batch.typed:  # only true and false: the common case, at C speed
                matched.extend(compress(batch.positions, result))
                continue
            matched.extend(i for i, v in zip(batch.positions, result, strict=True) if v is True)
        for i in sorted(matched):
            hit = self._hits[i]
            (out.shadow if hit.shadow else out.live).append(hit)
        out.errors = [self.rules[i].name for i in sorted(errors)]
        return out


def _matched(value: Any) -> bool:
    return value is True


def evaluate_one(compiled: Compiled, facts: Facts, lists: Mapping[str, Iterable[str]]) -> tuple[bool, str | None]:
    """One rule on one detection (the backtest, the save-time check): whether it matched, and its error if any."""
    places: dict[str, list] = {}
    for name, place in compiled.listed:
        places.setdefault(name, []).append(place)
    value = _run(compiled, activation(facts, named_lists(lists), places))
    if isinstance(value, EvalError):
        return False, _describe(value)
    return _matched(value), None
