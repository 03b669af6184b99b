"""Report text without its location words: the prompt a gaze map has to complete.

A report names where each finding is ("a small *right* pleural effusion", "consolidation *in the left
lower zone*"). A generator trained only on such prompts can place findings from the text alone, so
the gaze map tells it nothing. :func:`strip_locations` removes the words that say where (side,
zone, lobe and their prepositional phrases) and keeps what and how large; training drops them from
a share of the prompts (``TrainSettings.location_dropout``) and the gaze-placement protocol prompts
with stripped reports only.

The vocabulary covers the phantom's templates and the common radiology location words of MIMIC-CXR
reports (lobes, bases, apices, hila, lingula, retrocardiac).
"""

from __future__ import annotations

import re

SIDES = ("right", "left", "bilateral", "bilaterally", "both")
LEVELS = ("upper", "middle", "mid", "lower", "apical", "basal", "basilar", "bibasilar", "perihilar", "hilar",
          "retrocardiac", "lingular")  # fmt: skip
PLACES = ("zone", "zones", "lobe", "lobes", "lung", "lungs", "base", "bases", "apex", "apices", "hilum", "hila",
          "lingula", "hemithorax")  # fmt: skip

_SIDE = rf"(?:{'|'.join(SIDES)})"
_LEVEL = rf"(?:{'|'.join(LEVELS)})"
_PLACE = rf"(?:{'|'.join(PLACES)})"
# "in the right lower zone", "at the left base", "of the right upper lobe": a preposition, a location, a place
_PHRASE = re.compile(
    rf"\s*\b(?:in|at|within|of|involving)\s+(?:the\s+)?(?:{_SIDE}\s+)?(?:{_LEVEL}\s+)?(?:{_SIDE}\s+)?"
    rf"(?:(?<=\s){_PLACE}\b|(?:{_SIDE}|{_LEVEL})\b(?:\s+{_PLACE}\b)?)",
    re.IGNORECASE,
)
# a bare location before the noun: "right", "left lower zone", "apical"
_WORDS = re.compile(rf"\s*\b(?:{_SIDE}|{_LEVEL})\b(?:\s+{_LEVEL}\b)?(?:\s+(?:zone|zones|lobe|lobes)\b)?",
                    re.IGNORECASE)  # fmt: skip


def strip_locations(report: str) -> str:
    """``report`` without the words that say where a finding is (side, zone, lobe).

    >>> strip_locations("Patchy consolidation in the right lower zone. There is a small left apical pneumothorax.")
    'Patchy consolidation. There is a small pneumothorax.'

    Sentences that only say where something is *not* ("No pleural effusion.") are unchanged; a
    sentence whose every word is a location would be dropped whole (none of the phantom's are).
    """
    sentences = []
    for sentence in re.split(r"(?<=\.)\s+", report.strip()):
        text = _WORDS.sub("", _PHRASE.sub("", sentence))
        text = re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\s{2,}", " ", text)).strip()
        if re.search(r"\w", text):
            sentences.append(text[0].upper() + text[1:])
    return " ".join(sentences)
