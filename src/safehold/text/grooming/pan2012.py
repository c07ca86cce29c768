"""Read the PAN-2012 Sexual Predator Identification corpus format (Inches & Crestani 2012).

The format::

    <conversations>
      <conversation id="...">
        <message line="1"><author>hash</author><time>03:20</time><text>...</text></message>
      </conversation>
    </conversations>

plus a predators file with one author id per line. Safehold also reads an optional ``source`` attribute on
``<conversation>`` (which corpus it comes from), so that evaluation can report false positives per source.
A message's ``line`` becomes ``Message.id``; ``<time>`` holds
only a clock time without a date, so it is not turned into ``sent_at``.

The training and test sets hold tens of thousands of conversations, so the reader streams (``defusedxml``
``iterparse``) and frees each conversation once it has been yielded. An operator-supplied file is untrusted: DTDs,
entity declarations and external references are refused (no entity expansion bombs, no XXE, no network), and
malformed XML becomes ``SafeholdError("pan2012.invalid_xml")`` with the line number.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from safehold.errors import SafeholdError
from safehold.text.grooming.scorer import Message


@dataclass
class Conversation:
    id: str
    messages: list[Message]
    source: str = ""  # where the conversation comes from, for false positives per source (optional attribute)


def _invalid(message: str, **detail) -> SafeholdError:
    return SafeholdError("pan2012.invalid_xml", message, detail=detail)


def read_conversations(path_or_file: str | Path | IO[bytes]) -> Iterator[Conversation]:
    """Yield each ``<conversation>`` in document order; messages keep their order in the file."""
    try:
        events = iterparse(path_or_file, events=("start", "end"), forbid_dtd=True)
        root = None
        for event, elem in events:
            if event == "start":
                if root is None:
                    root = elem
                    if elem.tag != "conversations":
                        raise _invalid(f"Root element is <{elem.tag}>, expected <conversations>.")
                continue
            if elem.tag == "conversation":
                yield _conversation(elem)
                root.clear()  # streaming: drop what has been yielded
    except ParseError as exc:
        line, column = getattr(exc, "position", (None, None))
        raise _invalid(f"Malformed PAN-2012 XML at line {line}, column {column}: {exc}", line=line) from exc
    except DefusedXmlException as exc:
        raise _invalid(f"Refused unsafe XML construct: {exc}") from exc
    except FileNotFoundError as exc:
        raise SafeholdError("pan2012.not_found", f"No such file: {exc.filename}", status=404) from exc


def _conversation(elem) -> Conversation:
    cid = elem.get("id")
    if not cid:
        raise _invalid("A <conversation> has no id attribute.")
    messages = []
    for m in elem.iterfind("message"):
        author = (m.findtext("author") or "").strip()
        if not author:
            raise _invalid(f"Conversation {cid}: message line {m.get('line')} has no <author>.", conversation=cid)
        line = m.get("line")
        messages.append(Message(author=author, text=m.findtext("text") or "", id=line))
    return Conversation(id=cid, messages=messages, source=elem.get("source") or "")


def read_predators(path_or_file: str | Path | IO) -> set[str]:
    """Author ids, one per line (blank lines ignored)."""
    if isinstance(path_or_file, (str, Path)):
        try:
            text = Path(path_or_file).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise SafeholdError("pan2012.not_found", f"No such file: {path_or_file}", status=404) from exc
    else:
        data = path_or_file.read()
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    return {line.strip() for line in io.StringIO(text) if line.strip()}
