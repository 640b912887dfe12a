"""Reading a chat model's JSON answer: fields of the right type, frame numbers in range, answers
that quote the plot field they come from; the JSON-schema pieces the requests use; quarantine
records for what cannot be used. Shared by the LLM story and QA writers."""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..core.plot import Character, Quarantined, answer_key
from ..core.vocabulary import STORY_QTYPES


def need(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    value = obj.get(key)
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {key!r} must be non-empty text, got {value!r}")
        return " ".join(value.split())
    if kind is int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{where}: {key!r} must be a whole number, got {value!r}")
        return value
    if not isinstance(value, kind):
        raise ValueError(f"{where}: {key!r} must be a JSON {getattr(kind, '__name__', 'list or text')}, got {value!r}")
    return value


def frame_numbers(value: Any, low: int, high: int, where: str) -> list[int]:
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
            raise ValueError(f"{where}: {v!r} is not a number from {low} to {high}")
        out.append(v)
    return sorted(set(out))


def must_contain(answer: str, value: str, where: str) -> None:
    if not answer_key(value) or answer_key(value) not in answer.lower():
        raise ValueError(f"{where}: the answer {answer!r} does not contain, word for word, {value!r}")


def read_qtype(item: dict, where: str) -> str:
    qtype = str(item.get("qtype", "")).strip().lower()
    if qtype not in STORY_QTYPES:
        raise ValueError(f"{where}: qtype {item.get('qtype')!r} is not one of {list(STORY_QTYPES)}")
    return qtype


def answer_field(item: dict, allowed: Sequence[str], where: str) -> str:
    raw = str(item.get("answer_from", "")).strip().lower().replace("_", " ")
    for field in allowed:
        if raw == field or raw == field.split(" ", 1)[-1] or raw.replace(" ", "") == field.replace(" ", ""):
            return field
    raise ValueError(f"{where}: answer_from {item.get('answer_from')!r} is not one of {list(allowed)}")


def json_object(props: dict, optional: Sequence[str] = ()) -> dict:
    return {"type": "object", "properties": props, "additionalProperties": False,
            "required": [k for k in props if k not in optional]}


STR = {"type": "string"}


INT = {"type": "integer"}


QTYPE = {"type": "string", "enum": list(STORY_QTYPES)}


def user_message(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def cast_lines(cast: Sequence[Character]) -> str:
    return "\n".join(f"- {c.name}: {c.appearance}" for c in cast)


def bad_qa_records(bad: Sequence[tuple[int, Any, str]], movie_id: str, stage: str, step: str,
                    messages: list[dict]) -> list[Quarantined]:
    """One record per unusable QA item; its response is the item's JSON, its prompt the level's request."""
    return [Quarantined(movie_id, stage, f"{step}:qa{k + 1}", json.dumps(messages), json.dumps(item), reason)
            for k, item, reason in bad]


FRAME_FIELDS = ("frame action", "frame expression", "frame held_object")


LEVEL3_SOURCES = ("tinystory content", "tinystory scene", *FRAME_FIELDS)
