"""A person at risk speaking for themselves: the first-person phrases (category ``victim`` in the term lists) of a
child being asked for images, someone being threatened with their images, or someone disclosing abuse.

The search guard answers a search carrying one with ``support`` (help resources, never deterrence); the
conversation service treats a message carrying one as a disclosure that raises the conversation's risk and its
case's urgency. Both read the same phrases, so an operator who adds a language's phrases adds it to both.
"""

from __future__ import annotations

from safehold.text.terms import Matcher

VICTIM = "victim"
#: A first-person reference to one's own images ("my nudes", "mis fotos"), and a word of leaking or threatening
#: ("leaked", "publicó", "угрожают"): together, in a search, they are a person whose images are shared or
#: threatened. Neither alone, and not in conversations (too common in ordinary chat about photos).
VICTIM_IMAGES = "victim.images"
VICTIM_HARM = "victim.harm"


def victim_phrases(matcher: Matcher, text: str) -> list[str]:
    """The victim phrases in ``text``, as written in the term list, in order of first appearance."""
    found: dict[str, None] = {}
    for hit in matcher.find(text):
        if hit.term.category == VICTIM:
            found.setdefault(hit.term.term)
    return list(found)
