"""The search guard measured on queries it was not built from: abuse-seeking recall per language and per evasion,
support recall on victims' searches, and false answers on real benign queries in many languages.

- **abuse**: the ``abuse`` base queries of ``bench/data/search_guard_eval.json`` (22 languages, written apart from
  the term lists and frozen before the first run; see the file's ``about``), each also rewritten by every evasion
  below that applies to its script. A query counts as caught when the guard answers ``warn`` or ``block``.
- **evasions**, generated here from the base queries (seeded): ``leet`` (a letter inside each word of three or
  more Latin letters becomes the digit it looks like), ``symbols`` (".", "*" or "-" inserted between letters),
  ``spaced`` (one word's letters spelt apart), ``zero_width`` (U+200B between letters), ``homoglyph`` (Latin
  letters replaced by Cyrillic/Greek lookalikes), ``fullwidth`` (NFKC-equivalent fullwidth forms), ``case``
  (random upper case), ``translit`` (Cyrillic queries in Latin letters), ``mixed_script`` (Cyrillic words with
  Latin lookalikes slipped in).
- **victim**: the ``victim`` queries (7 languages, phrased differently from the list's victim phrases); caught
  when the answer is ``support``. ``hard_benign``: ordinary searches sharing words with the lists.
- **benign**: every question of XQuAD (12 languages, 1,190 each; Artetxe et al. 2020, CC BY-SA 4.0,
  github.com/google-deepmind/xquad), the JSQuAD validation set (Japanese; JGLUE, Kurihara et al. 2022,
  CC BY-SA 4.0, github.com/yahoojapan/JGLUE) and the KorQuAD 1.0 dev set (Korean; Lim et al. 2019,
  CC BY-ND 2.0 KR, github.com/korquad/korquad.github.io): real questions people wrote, read from git
  checkouts given with ``--xquad``, ``--jglue`` and ``--korquad`` and never copied into the repository. Each
  question is checked in its language's locale; warn, block and support rates per language. The false answers
  are printed to stderr so they can be read, and kept out of the JSON (the datasets are not copied in).

Usage: ``.venv/bin/python bench/search_guard.py --xquad DIR --jglue DIR --korquad DIR [--out FILE]`` where each DIR
is a clone (a bare mirror works: files are read with ``git show HEAD:path``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from machine_info import machine  # noqa: E402
from safehold.text.normalize import transliterate  # noqa: E402
from safehold.text.search import QueryGuard  # noqa: E402

XQUAD_LANGS = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
LEET = {"o": "0", "i": "1", "e": "3", "a": "4", "s": "5", "t": "7"}
HOMOGLYPH = {"a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у", "i": "і", "k": "κ", "n": "η"}
TO_LATIN_LOOKALIKE = {"а": "a", "с": "c", "е": "e", "о": "o", "р": "p", "х": "x", "у": "y"}
EXAMPLES = 8


def _latin(word: str) -> bool:
    return any("a" <= c.lower() <= "z" for c in word)


def _per_word(query: str, rng: random.Random, change) -> str:
    return " ".join(change(w, rng) for w in query.split())


def _leet(word: str, rng: random.Random) -> str:
    inner = [i for i, c in enumerate(word[1:-1], 1) if c.lower() in LEET]
    if len(word) < 3 or not _latin(word) or not inner:
        return word
    i = rng.choice(inner)
    return word[:i] + LEET[word[i].lower()] + word[i + 1 :]


def _insert(word: str, rng: random.Random, sep: str) -> str:
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word))
    return word[:i] + sep + word[i:]


def _homoglyph(word: str, rng: random.Random) -> str:
    return "".join(HOMOGLYPH.get(c, c) if rng.random() < 0.5 else c for c in word)


def _fullwidth(query: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in query)


def evasions(query: str, rng: random.Random) -> dict[str, str]:
    """Every evasion of ``query`` that applies to its script (the ones that change nothing are left out)."""
    longest = max(query.split(), key=len)
    out = {
        "leet": _per_word(query, rng, _leet),
        "symbols": _per_word(query, rng, lambda w, r: _insert(w, r, r.choice(".*-"))),
        "spaced": query.replace(longest, " ".join(longest), 1),
        "zero_width": _per_word(query, rng, lambda w, r: _insert(w, r, "\u200b")),
        "homoglyph": _per_word(query, rng, _homoglyph),
        "fullwidth": _fullwidth(query),
        "case": "".join(c.upper() if rng.random() < 0.5 else c for c in query),
    }
    if any("\u0400" <= c <= "\u04ff" for c in query):
        out["translit"] = transliterate(query)
        out["mixed_script"] = "".join(TO_LATIN_LOOKALIKE.get(c, c) if rng.random() < 0.5 else c for c in query)
    return {k: v for k, v in out.items() if v != query}


def _rate(hit: int, n: int) -> dict:
    return {"n": n, "caught": hit, "rate": round(hit / n, 4) if n else None}


def bench_abuse(guard: QueryGuard, data: dict, seed: int) -> dict:
    rng = random.Random(seed)
    per_lang: dict[str, list[int]] = {}
    per_evasion: dict[str, list[int]] = {}
    missed: list[dict] = []
    for lang, queries in data["abuse"].items():
        for q in queries:
            for kind, text in {"plain": q, **evasions(q, rng)}.items():
                caught = guard.check(text, lang).action in ("warn", "block")
                for table, key in ((per_lang, lang), (per_evasion, kind)):
                    table.setdefault(key, [0, 0])
                    table[key][0] += caught
                    table[key][1] += 1
                if not caught and len(missed) < 40:
                    missed.append({"lang": lang, "evasion": kind, "query": text})
    total = [sum(v[0] for v in per_lang.values()), sum(v[1] for v in per_lang.values())]
    return {
        "overall": _rate(*total),
        "per_language": {k: _rate(*v) for k, v in sorted(per_lang.items())},
        "per_evasion": {k: _rate(*v) for k, v in sorted(per_evasion.items())},
        "missed": missed,
    }


def bench_victim(guard: QueryGuard, data: dict) -> dict:
    per_lang, missed = {}, []
    for lang, queries in data["victim"].items():
        answers = [guard.check(q, lang) for q in queries]
        per_lang[lang] = _rate(sum(a.action == "support" for a in answers), len(queries))
        pairs = zip(queries, answers, strict=True)
        missed += [{"lang": lang, "query": q, "action": a.action} for q, a in pairs if a.action != "support"]
    hit, n = sum(v["caught"] for v in per_lang.values()), sum(v["n"] for v in per_lang.values())
    hard = {}
    for lang, queries in data["hard_benign"].items():
        for q in queries:
            a = guard.check(q, lang).action
            if a != "allow":
                hard[q] = a
    n_hard = sum(len(v) for v in data["hard_benign"].values())
    return {"overall": _rate(hit, n), "per_language": per_lang, "missed": missed,
            "hard_benign": {"n": n_hard, "not_allowed": hard}}  # fmt: skip


def _git_json(repo: Path, path: str):
    blob = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, check=True).stdout
    return json.loads(blob)


def _git_commit(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def _squad_questions(data: dict) -> list[str]:
    return [qa["question"] for art in data["data"] for para in art["paragraphs"] for qa in para["qas"]]


def benign_corpus(xquad: Path, jglue: Path, korquad: Path) -> tuple[dict[str, list[str]], dict]:
    corpus = {lang: _squad_questions(_git_json(xquad, f"xquad.{lang}.json")) for lang in XQUAD_LANGS}
    corpus["ja"] = _squad_questions(_git_json(jglue, "datasets/jsquad-v1.3/valid-v1.3.json"))
    corpus["ko"] = _squad_questions(_git_json(korquad, "dataset/KorQuAD_v1.0_dev.json"))
    sources = {
        "xquad": {"repo": "github.com/google-deepmind/xquad", "commit": _git_commit(xquad), "licence": "CC BY-SA 4.0"},
        "jsquad": {"repo": "github.com/yahoojapan/JGLUE", "commit": _git_commit(jglue), "licence": "CC BY-SA 4.0",
                   "file": "datasets/jsquad-v1.3/valid-v1.3.json"},
        "korquad": {"repo": "github.com/korquad/korquad.github.io", "commit": _git_commit(korquad),
                    "licence": "CC BY-ND 2.0 KR", "file": "dataset/KorQuAD_v1.0_dev.json"},
    }  # fmt: skip
    return corpus, sources


def bench_benign(guard: QueryGuard, corpus: dict[str, list[str]]) -> dict:
    per_lang: dict[str, dict] = {}
    flagged: list[dict] = []
    n_all = 0
    counts_all = {"warn": 0, "block": 0, "support": 0}
    t0 = time.perf_counter()
    for lang, queries in sorted(corpus.items()):
        counts = {"warn": 0, "block": 0, "support": 0}
        for q in queries:
            d = guard.check(q, lang)
            if d.action != "allow":
                counts[d.action] += 1
                if len(flagged) < 50:  # the question itself only on stdout: the datasets are not copied in
                    flagged.append({"lang": lang, "action": d.action, "category": d.category})
                    print(f"benign {lang} -> {d.action} ({d.category}): {q}", file=sys.stderr)
        n = len(queries)
        n_all += n
        for k in counts:
            counts_all[k] += counts[k]
        per_lang[lang] = {"n": n, **counts, **{f"{k}_rate": round(v / n, 5) for k, v in counts.items()}}
    elapsed = time.perf_counter() - t0
    return {
        "n": n_all,
        **counts_all,
        **{f"{k}_rate": round(v / n_all, 6) for k, v in counts_all.items()},
        "per_language": per_lang,
        "flagged": flagged,
        "checks_per_s": round(n_all / elapsed),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "bench" / "data" / "search_guard_eval.json")
    ap.add_argument("--xquad", type=Path, required=True)
    ap.add_argument("--jglue", type=Path, required=True)
    ap.add_argument("--korquad", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "search_guard.json")
    args = ap.parse_args()

    data = json.loads(args.data.read_text(encoding="utf-8"))
    guard = QueryGuard()
    corpus, sources = benign_corpus(args.xquad, args.jglue, args.korquad)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "abuse": bench_abuse(guard, data, args.seed),
        "victim": bench_victim(guard, data),
        "benign": {"sources": sources, **bench_benign(guard, corpus)},
    }
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    summary = {
        "abuse_recall": result["abuse"]["overall"],
        "per_evasion": {k: v["rate"] for k, v in result["abuse"]["per_evasion"].items()},
        "per_language": {k: v["rate"] for k, v in result["abuse"]["per_language"].items()},
        "support_recall": result["victim"]["overall"],
        "benign": {k: result["benign"][k] for k in ("n", "warn", "block", "support", "checks_per_s")},
    }
    print(json.dumps(summary, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
