"""Which option a model's reply picks: one reading for every answerer that asks a model
(the blind LLM and the VLM), so their accuracies are measured the same way."""

from __future__ import annotations

import re
from typing import Any

from ..models.llm import parse_json

LETTERS = "ABCDEFGH"
_NAMED = re.compile(r"\b(?:answer|option|choice)\W*(?:is\W*)?\(?([A-H])(?![A-Za-z])", re.I)  # "the answer is b"
_LETTER = re.compile(r"(?<![A-Za-z])([A-H])(?![A-Za-z])")  # "B", "(B)", "B. ...", "**B**"


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def _article(reply: str, match: re.Match) -> bool:
    """"A tall woman ...", "the answer is a lantern": the article, not the letter A."""
    after = reply[match.end(1) : match.end(1) + 2]
    return match.group(1) in "Aa" and len(after) == 2 and after[0] == " " and after[1].islower()


def parse_choice(reply: str, options: tuple[str, ...]) -> int:
    """The index of the option ``reply`` picks, or -1.

    In order: a JSON ``{"answer": "B"}``; "the answer is B"; the first standalone
    letter; the one option whose text the reply contains (the longest, when one option
    contains another); the one option a cut-off reply starts. An "a" / "A" followed by
    a lower-case word is the article ("A tall woman", "the answer is a lantern").
    """
    reply = reply or ""
    letters = LETTERS[: len(options)]
    value, _ = parse_json(reply)
    if isinstance(value, dict) and isinstance(value.get("answer"), str):
        letter = value["answer"].strip().strip(".()").upper()
        if len(letter) == 1 and letter in letters:
            return letters.index(letter)
    named = _NAMED.search(reply)
    if named and not _article(reply, named) and named.group(1).upper() in letters:
        return letters.index(named.group(1).upper())
    for m in _LETTER.finditer(reply):
        if not _article(reply, m) and m.group(1) in letters:
            return letters.index(m.group(1))
    said = _key(reply)
    if not said:
        return -1
    texts = [_key(o) for o in options]
    inside = [i for i, t in enumerate(texts) if t and re.search(rf"\b{re.escape(t)}\b", said)]
    if inside:
        # "the great hall" also contains "hall": the longest match is the one meant
        longest = max(len(texts[i]) for i in inside)
        best = [i for i in inside if len(texts[i]) == longest]
        return best[0] if len(best) == 1 else -1
    starts = [i for i, t in enumerate(texts) if len(said) >= 3 and t.startswith(said)]
    return starts[0] if len(starts) == 1 else -1


def answerer_identity(answerer: Any) -> str:
    """What an answerer's picks depend on, for cache keys: its ``identity()``, or its name
    when it has no settings (pixel, oracle, random)."""
    return answerer.identity() if hasattr(answerer, "identity") else answerer.name
