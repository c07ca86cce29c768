"""Grooming and sextortion risk in conversations (Voluntary Principle 3).

``scorer`` scores a conversation incrementally from the stages of the grooming process and age signals (``ages``)
and, by default, the learned ``model`` shipped in the package (trained on real conversations; the features it sees
are in ``features``); ``pan2012`` reads the PAN-2012 corpus format and ``evaluate`` computes author-level
precision/recall/F0.5, early-detection figures and false positives per source.
"""

from safehold.text.grooming.ages import ages_in
from safehold.text.grooming.scorer import STAGES, Assessment, ConversationState, GroomingScorer, Message, Profile

__all__ = ["STAGES", "Assessment", "ConversationState", "GroomingScorer", "Message", "Profile", "ages_in"]
