"""The real conversations Safehold's shipped grooming model is trained and measured on, read from public git
repositories at pinned commits (nothing here is committed: the repositories are cloned or fetched at training time).

Why these sources:

- **Offenders**: the Perverted-Justice logs of ``helenkoutli/PervertedJusticeDataset`` are the only public real
  offender conversations. Half of the offenders are reserved for independent evaluation
  (``shared/data/grooming/pj_split.py``); only handles for which ``may_train_on`` is true are read, and no other copy
  of the archive (PAN-2012's positives are PJ logs too) is used. The decoys ("officers", adults posing as children)
  are negative authors inside the same conversations: they write the sexual talk a child is drawn into, so they are
  the hardest negatives there are.
- **Negatives**, of different styles: Ubuntu IRC channel logs (many-party, technical), NPS chat rooms (many-party,
  teens/20s/30s/40s/adults rooms, age/sex/location talk and flirting), Topical-Chat (two-party casual chat between
  strangers) and adult consensual sexting between lovers (two-party, explicit: the hard negatives a model must not
  mistake for grooming).

The PJ snapshot holds each side of a conversation in its own file without timestamps, so turn order is lost; a
conversation is rebuilt by merging the sides by relative position (the i-th of n lines of a side is placed at
(i + 0.5) / n). Features that depend on who-answers-whom are therefore not learned from this data.

Many-party logs are cut into windows of ``WINDOW`` messages (the scorer tracks at most 50 participants); an author
is one name inside one window, the way a platform sees one conversation.

``split(key)`` assigns every offender (and every negative conversation) to train / validation / test by a salted
hash of its key, so an offender never appears in two parts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from xml.etree import ElementTree

from safehold.text.grooming.pan2012 import Conversation
from safehold.text.grooming.scorer import Message

WINDOW = 150
PJ_SPLIT = Path(__file__).resolve().parents[2] / "shared" / "data" / "grooming" / "pj_split.py"


@dataclass(frozen=True)
class Source:
    name: str
    repo: str
    commit: str
    licence: str
    style: str


SOURCES = (
    Source(
        "pj",
        "helenkoutli/PervertedJusticeDataset",
        "95499214716684c16a224710f9516883c395218b",
        "no licence file; the logs were published by Perverted-Justice for public awareness; used for research, "
        "train-allowed half only",
        "offender and decoy, two-party instant messaging (2004-2016)",
    ),
    Source(
        "irc",
        "jkkummerfeld/irc-disentanglement",
        "82ed04f9627a45d0d6f2ec3c8683c88eb408a0d5",
        "CC-BY-4.0 (data/)",
        "Ubuntu IRC channel, many-party",
    ),
    Source(
        "nps",
        "nltk/nltk_data",
        "5db857e6f7df11eabb5e5665836db9ec8df07e28",
        "NPS Chat Corpus: non-commercial, non-profit educational and research use",
        "age-themed chat rooms (teens, 20s, 30s, 40s, adults), many-party",
    ),
    Source(
        "topical",
        "alexa/Topical-Chat",
        "7c939229cbcf6f55f6977b341a5a2f2fe982d53f",
        "CDLA-Sharing-1.0",
        "two-party casual chat between strangers",
    ),
    Source(
        "sexting",
        "mathigatti/sexting-dataset",
        "7ee8ad98d42d220b76e9d9c1dd2be71ea68e5949",
        "MIT (repository); texts collected from public web pages",
        "adult consensual sexting between lovers, two-party (hard negatives)",
    ),
)
BY_NAME = {s.name: s for s in SOURCES}
#: Sources whose licence allows research but not a product's use: measured on (the test part of
#: ``bench/grooming.py``, a research use), never used to fit or calibrate the model that ships in an Apache-2.0
#: package and runs on commercial platforms.
EVALUATION_ONLY = frozenset({"nps"})


def pj_rule():
    """``may_train_on`` from the shared split rule (loaded from its file: it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("pj_split", PJ_SPLIT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.may_train_on, module.key


class Repo:
    """Files of one source at its pinned commit, read from a git directory (a clone or a fetched snapshot)."""

    def __init__(self, root: Path, source: Source):
        owner, name = source.repo.split("/")
        candidates = [root / f"{owner}+{name}" / "repo", root / f"{owner}+{name}", root / name, root / source.repo]
        for c in candidates:
            for git_dir in (c / ".git", c):
                if (git_dir / "HEAD").exists():
                    self.git_dir, self.commit = git_dir, source.commit
                    return
        raise SystemExit(f"{source.repo} not found under {root} (clone it there, e.g. {root}/{name})")

    def _git(self, *args: str) -> bytes:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], check=True, capture_output=True).stdout

    def paths(self, under: str) -> list[str]:
        out = self._git("ls-tree", "-r", "--name-only", self.commit, "--", under).decode()
        return sorted(p for p in out.splitlines() if p)

    def read(self, path: str) -> bytes:
        return self._git("show", f"{self.commit}:{path}")


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace").replace("\\'", "'").replace('\\"', '"')
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _merge(sides: dict[str, list[str]]) -> list[Message]:
    """Interleave the sides of a conversation by relative position (see the module docstring)."""
    placed = []
    for author, lines in sides.items():
        n = len(lines)
        placed.extend(((i + 0.5) / n, author, line) for i, line in enumerate(lines))
    placed.sort(key=lambda p: (p[0], p[1]))
    return [Message(author=a, text=t, id=str(i + 1)) for i, (_, a, t) in enumerate(placed)]


def pj(repo: Repo) -> Iterator[tuple[Conversation, str]]:
    """(conversation, offender author) for every train-allowed offender; the decoys are the other authors."""
    may_train_on, key = pj_rule()
    officers: dict[str, list[str]] = {}
    for path in repo.paths("officers"):
        stem = Path(path).stem.removeprefix("officer_")
        handle = re.sub(r"_\d+$", "", stem)
        officers.setdefault(handle, []).append(path)
    for path in repo.paths("predators"):
        handle = Path(path).stem.removeprefix("predator_")
        if not may_train_on(handle):
            continue
        offender = f"pj:{key(handle)}"
        sides = {offender: _lines(repo.read(path))}
        for i, opath in enumerate(officers.get(handle, ())):
            sides[f"pj-decoy:{key(handle)}:{i}"] = _lines(repo.read(opath))
        yield Conversation(id=f"pj/{key(handle)}", messages=_merge(sides), source="pj"), offender


def _windows(name: str, messages: list[tuple[str, str]], source: str) -> Iterator[Conversation]:
    for w in range(0, len(messages), WINDOW):
        cid = f"{source}/{name}#{w // WINDOW}"
        chunk = messages[w : w + WINDOW]
        msgs = [Message(author=f"{cid}:{a}", text=t, id=str(i + 1)) for i, (a, t) in enumerate(chunk)]
        if len({m.author for m in msgs}) > 1:
            yield Conversation(id=cid, messages=msgs, source=source)


_IRC = re.compile(r"^\[\d\d:\d\d\] <([^>]+)> (.+)$")


def irc(repo: Repo) -> Iterator[Conversation]:
    for path in repo.paths("data"):
        if path.endswith(".raw.txt") and path.split("/")[1] in ("train", "dev", "test"):
            msgs = [(m[1], m[2]) for ln in _lines(repo.read(path)) if (m := _IRC.match(ln))]
            yield from _windows(Path(path).name.removesuffix(".raw.txt"), msgs, "irc")


def nps(repo: Repo) -> Iterator[Conversation]:
    with zipfile.ZipFile(BytesIO(repo.read("packages/corpora/nps_chat.zip"))) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".xml") and "posts" in n):
            root = ElementTree.fromstring(z.read(name))
            msgs = [
                (p.get("user"), (p.text or "").strip())
                for p in root.iter("Post")
                if p.get("class") != "System" and (p.text or "").strip()
            ]
            yield from _windows(Path(name).stem, msgs, "nps")


TOPICAL_FILES = ("test_freq", "test_rare", "valid_freq", "valid_rare")  # train.json (> 4 MiB) is not needed


def topical(repo: Repo) -> Iterator[Conversation]:
    for path in (f"conversations/{name}.json" for name in TOPICAL_FILES):
        for cid, conv in sorted(json.loads(repo.read(path)).items()):
            msgs = [(turn["agent"], turn["message"]) for turn in conv["content"] if turn["message"].strip()]
            yield from _windows(cid, msgs, "topical")


_SPEAKER = re.compile(r"^(He|She|Him|Her|[A-Z][a-z]{0,12}):\s*(.+)$")


def sexting(repo: Repo) -> Iterator[Conversation]:
    for path in repo.paths("clean"):
        msgs = [(m[1], m[2]) for ln in _lines(repo.read(path)) if (m := _SPEAKER.match(ln))]
        yield from _windows(Path(path).stem, msgs, "sexting")


READERS = {"irc": irc, "nps": nps, "topical": topical, "sexting": sexting}


def load(root: Path) -> tuple[list[Conversation], set[str]]:
    """Every conversation of every source, and the offender authors."""
    conversations: list[Conversation] = []
    offenders: set[str] = set()
    for conv, offender in pj(Repo(root, BY_NAME["pj"])):
        conversations.append(conv)
        offenders.add(offender)
    for name, reader in READERS.items():
        conversations.extend(reader(Repo(root, BY_NAME[name])))
    return conversations, offenders


def part(conversation_id: str, salt: str = "safehold-grooming-bench-v1") -> str:
    """train (60 %), validation (20 %) or test (20 %) for a conversation; PJ conversations are one per offender, so
    this is a split by offender. Many-party windows of one log stay together (keyed by the log, not the window)."""
    group = conversation_id.split("#")[0]
    h = hashlib.sha256(f"{salt}|{group}".encode()).digest()[0] % 10
    return "train" if h < 6 else "validation" if h < 8 else "test"


def grouped(conversation_id: str, train_share: float, salt: str) -> bool:
    """True for the ``train_share`` part of a grouped random split with its own salt (for ``safehold text train``'s
    70/30 measure)."""
    group = conversation_id.split("#")[0]
    return int.from_bytes(hashlib.sha256(f"{salt}|{group}".encode()).digest()[:4], "big") / 2**32 < train_share
