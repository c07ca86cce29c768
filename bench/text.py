"""Text safety, in process on one core: the search guard, the suggestion filter, solicitation scoring, grooming
scoring, and the grooming detector's figures on a PAN-2012-format corpus.

- **search**: ``QueryGuard.check`` on N generated queries (1–6 words from a mixed vocabulary of common English
  words and pronounceable non-words, so most queries are unique; ``--term-rate`` of them carry a starter-list
  term, some in an evasive spelling). Queries/s, p50/p99 per call. The peer in the same run is the approach the
  issue rules out: one compiled word-boundary regex per term, looped over every query (after the same
  normalisation), reporting the same hits; the two must agree on which queries hit.
- **suggestions**: ``filter_suggestions`` on batches of 10 suggestions, suggestions/s.
- **solicitation**: ``SolicitationScorer.score`` on generated posts of 10–40 words, posts/s.
- **grooming**: ``GroomingScorer.add`` (the default: the shipped model on top of the stage rules) on generated
  conversations (two participants, 40 messages each), one message at a time as the API receives them, messages/s
  and p99 per message; ``grooming_rules_only`` the same with ``rules_only=True``, for comparison.
- **api**: ``POST /v1/search/check`` served by ``safehold serve`` (SQLite, its own process), driven open-loop at
  ``--api-rate`` requests/s for ``--api-seconds`` by a load generator in a third process (asyncio streams,
  keep-alive); latency from the request's scheduled send time to its answer (so a stalled server shows).
- **eval** (``--corpus`` XML and ``--predators`` list, PAN-2012 format; default: the repository's synthetic test
  corpus): precision, recall, F0.5 and latency-weighted F1 of the default detector (real-data figures:
  ``bench/grooming.py``).

Usage: ``.venv/bin/python bench/text.py [--queries 200000] [--out bench/results/text.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from machine_info import machine  # noqa: E402
from safehold.text import Matcher, load_starter, normalize  # noqa: E402
from safehold.text.grooming.evaluate import evaluate  # noqa: E402
from safehold.text.grooming.pan2012 import read_conversations, read_predators  # noqa: E402
from safehold.text.grooming.scorer import GroomingScorer, Message  # noqa: E402
from safehold.text.search import QueryGuard  # noqa: E402
from safehold.text.solicitation import SolicitationScorer  # noqa: E402
from server import Server, open_loop  # noqa: E402

COMMON = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by word "
    "but not what all were we when your can said there use an each which she do how their if will up other about "
    "out many then them these so some her would make like him into time has look two more write go see number no "
    "way could people my than first water been call who oil its now find long down day did get come made may part "
    "recipe cheap flights weather news football score lyrics movie tickets near me best price review how to fix "
    "pizza delivery hotel paris london jobs remote laptop phone case shoes dress garden chair school holiday train"
).split()
SYLLABLES = "ka lo mi ne ru sa te vi bo da fe gu ha ji ko le ma no pi qu ra si tu va we xo ya zu".split()
EVASIONS = (str.upper, lambda w: w.replace("o", "0").replace("e", "3"), lambda w: " ".join(w), lambda w: w + w[-1] * 3)


def word(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(COMMON)
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


CUE_LINES = (
    "you are so mature for your age",
    "are you home alone right now",
    "don't tell your parents about me",
    "add me on snap",
    "how old are you",
    "i can buy you a gift card",
    "send me a pic",
    "delete this chat",
)


def chat_line(rng: random.Random, cue_rate: float = 0.05) -> str:
    """A generated chat message of 3–15 words; ``cue_rate`` of them end with a grooming cue line."""
    text = " ".join(word(rng) for _ in range(rng.randint(3, 15)))
    return text + " " + rng.choice(CUE_LINES) if rng.random() < cue_rate else text


def queries(n: int, term_rate: float, terms: list[str], rng: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        words = [word(rng) for _ in range(rng.randint(1, 6))]
        if terms and rng.random() < term_rate:
            term = rng.choice(terms)
            words.insert(rng.randrange(len(words) + 1), rng.choice(EVASIONS)(term) if rng.random() < 0.3 else term)
        out.append(" ".join(words))
    return out


def timed(fn, items) -> tuple[float, list[float]]:
    lat = []
    start = time.perf_counter()
    for item in items:
        t = time.perf_counter()
        fn(item)
        lat.append(time.perf_counter() - t)
    return time.perf_counter() - start, lat


def summary(n: int, seconds: float, lat: list[float], unit: str) -> dict:
    lat.sort()
    return {
        "n": n,
        f"{unit}_per_second": round(n / seconds),
        "p50_us": round(lat[len(lat) // 2] * 1e6, 1),
        "p99_us": round(lat[int(len(lat) * 0.99)] * 1e6, 1),
    }


def bench_search(n: int, term_rate: float, rng: random.Random) -> dict:
    starter = load_starter()
    guard = QueryGuard(starter)
    qs = queries(n, term_rate, [t.term for t in starter.terms], rng)
    for q in qs[:2000]:  # warm up
        guard.check(q)
    seconds, lat = timed(guard.check, qs)
    out = summary(n, seconds, lat, "queries")
    actions = {}
    for q in qs:
        a = guard.check(q).action
        actions[a] = actions.get(a, 0) + 1
    out["actions"] = actions
    out["unique_queries"] = len(set(qs))

    # Peer: a loop of per-term regexes over the same normalised text, checked to find the same queries.
    matcher = Matcher(starter.terms)
    keys = sorted({normalize(t.term) for t in starter.terms} - {""})
    patterns = [re.compile(r"(?<!\S)" + re.escape(k) + r"(?!\S)") for k in keys]
    sample = qs[: min(n, 20_000)]

    def regex_loop(q: str) -> bool:
        text = normalize(q)
        return any(p.search(text) for p in patterns)

    def automaton(q: str) -> bool:
        return bool(matcher.find(q))

    a_seconds, _ = timed(automaton, sample)
    r_seconds, _ = timed(regex_loop, sample)
    disagree = sum(automaton(q) != regex_loop(q) for q in sample)
    out["matching"] = {
        "terms": len(keys),
        "sample": len(sample),
        "automaton_per_second": round(len(sample) / a_seconds),
        "regex_loop_per_second": round(len(sample) / r_seconds),
        "speedup": round(r_seconds / a_seconds, 1),
        "disagreements": disagree,
    }
    batches = [qs[i : i + 10] for i in range(0, min(n, 50_000), 10)]
    s_seconds, _ = timed(guard.filter_suggestions, batches)
    out["suggestions_per_second"] = round(len(batches) * 10 / s_seconds)
    return out


def bench_solicitation(n: int, rng: random.Random) -> dict:
    starter = load_starter()
    scorer = SolicitationScorer(starter)
    terms = [t.term for t in starter.terms]
    posts = []
    for _ in range(n):
        words = [word(rng) for _ in range(rng.randint(10, 40))]
        if rng.random() < 0.1:
            words.insert(rng.randrange(len(words)), rng.choice(terms))
        if rng.random() < 0.05:
            words.append("t.me/" + "".join(rng.choice(SYLLABLES) for _ in range(3)))
        posts.append(" ".join(words))
    seconds, lat = timed(scorer.score, posts)
    return summary(n, seconds, lat, "posts")


def bench_grooming(conversations: int, rng: random.Random, *, rules_only: bool = False) -> dict:
    scorer = GroomingScorer(rules_only=rules_only)
    convs = [
        [Message(author=f"u{c}-{i % 2}", text=chat_line(rng), id=str(i)) for i in range(80)]
        for c in range(conversations)
    ]
    lat: list[float] = []
    start = time.perf_counter()
    for msgs in convs:
        state = scorer.new_state()
        for m in msgs:
            t = time.perf_counter()
            scorer.add(state, m)
            lat.append(time.perf_counter() - t)
    seconds = time.perf_counter() - start
    out = summary(len(lat), seconds, lat, "messages")
    out["state_json_bytes_p50"] = statistics.median(len(json.dumps(_state(scorer, msgs))) for msgs in convs[:50])
    return out


def _state(scorer: GroomingScorer, msgs: list[Message]) -> dict:
    state = scorer.new_state()
    for m in msgs:
        scorer.add(state, m)
    return state.to_dict()


async def _drive(url: str, token: str, queries: list[str], rate: int, seconds: float) -> list[float]:
    bodies = [json.dumps({"query": q, "locale": "en"}).encode() for q in queries]
    return await open_loop(url, "/v1/search/check", token, bodies, rate, seconds)


def _load(url: str, token: str, queries: list[str], rate: int, seconds: float, out) -> None:
    """In its own process; sends the latencies, or the failure as text (so the parent never waits forever)."""
    try:
        asyncio.run(_drive(url, token, queries, rate, 2.0))  # warm up the server and the connections
        out.send(asyncio.run(_drive(url, token, queries, rate, seconds)))
    except BaseException as exc:  # noqa: BLE001 - whatever it was, the parent reports it
        out.send(f"load generator failed: {exc!r}")


def bench_api(rate: int, seconds: float, rng: random.Random) -> dict:
    with tempfile.TemporaryDirectory() as home:
        server = Server(Path(home))
        try:
            token = server.token("platform")
            qs = queries(5000, 0.05, [t.term for t in load_starter().terms], rng)
            recv, send = get_context("spawn").Pipe(duplex=False)
            proc = get_context("spawn").Process(target=_load, args=(server.base, token, qs, rate, seconds, send))
            proc.start()
            lat = recv.recv()
            proc.join()
            if isinstance(lat, str):
                raise SystemExit(lat)
        finally:
            server.stop()
    lat.sort()
    pick = lambda q: round(lat[min(len(lat) - 1, int(len(lat) * q))] * 1000, 2)  # noqa: E731
    return {"rate": rate, "seconds": seconds, "requests": len(lat), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "max_ms": round(lat[-1] * 1000, 2)}  # fmt: skip


def bench_eval(corpus: Path, predators: Path) -> dict:
    convs = list(read_conversations(corpus))
    preds = read_predators(predators)
    result = evaluate(GroomingScorer(), convs, preds)
    return {"corpus": str(corpus.relative_to(REPO) if corpus.is_relative_to(REPO) else corpus), **result}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=200_000)
    p.add_argument("--term-rate", type=float, default=0.05)
    p.add_argument("--posts", type=int, default=20_000)
    p.add_argument("--conversations", type=int, default=500)
    p.add_argument("--corpus", type=Path, default=REPO / "tests/data/grooming/conversations.xml")
    p.add_argument("--predators", type=Path, default=REPO / "tests/data/grooming/predators.txt")
    p.add_argument("--api-rate", type=int, default=500)
    p.add_argument("--api-seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", type=Path, default=REPO / "bench/results/text.json")
    args = p.parse_args()
    rng = random.Random(args.seed)
    result = {
        "benchmark": "text",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "machine": machine(),
        "search": bench_search(args.queries, args.term_rate, rng),
        "solicitation": bench_solicitation(args.posts, rng),
        "grooming": bench_grooming(args.conversations, random.Random(args.seed)),
        "grooming_rules_only": bench_grooming(args.conversations, random.Random(args.seed), rules_only=True),
        "api": bench_api(args.api_rate, args.api_seconds, rng),
        "eval": bench_eval(args.corpus, args.predators),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
