"""Whatever a chat model answers, the LLM story and QA writers either return tables that pass
the data contracts or quarantine the movie with a reason; no other exception escapes.

The model is a scripted client (no server, no model): each request gets the right
answer for its level with a fault applied, first a fixed list of the faults models and
servers are known for, then hypothesis's random mixes of them.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamframe_assets.core.params import LLMParams, MoviePlotsParams, QAPairsParams
from dreamframe_assets.core.plot import MoviePlot, QABatch, as_row
from dreamframe_assets.core.schemas import validate
from dreamframe_assets.core.store import rows_table
from dreamframe_assets.models.llm import CachedChat, Completion, QuarantineError
from dreamframe_assets.qa.llm import QA_PER_TINYSTORY, LLMQAWriter
from dreamframe_assets.story.llm import LLMStoryWriter

from ..story.test_llm import THEME, check_tables, level1_answer, level2_answer, level3_answer, qa_answer

L, M, N = 2, 2, 3
HUGE = 5_000
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

Answer = Callable[[str, str], str]  # (level, request text) -> the model's text


def right_answer(level: str, content: str) -> dict:
    """What a model that follows the prompt answers for ``level``."""
    return {"level1": level1_answer, "level2": lambda: level2_answer(content), "level3": level3_answer,
            "qa": lambda: qa_answer(content)}[level]()


class ScriptedClient:
    """A chat client whose answers come from ``answer(level, request text)``; the level is the
    JSON schema's title, as the writers send it."""

    kind = "scripted"

    def __init__(self, params: LLMParams, answer: Answer):
        self.params = params
        self.answer = answer

    def identity(self) -> str:
        return "scripted"

    def complete(self, requests: Sequence[list[dict]], json_schema: dict | None = None, seed: int | None = None,
                 on_done=None) -> list[Completion]:
        out = []
        for i, messages in enumerate(requests):
            done = Completion(self.answer(json_schema["title"], messages[-1]["content"]), 0, 0)
            if on_done:
                on_done(i, done)
            out.append(done)
        return out


def writers(answer: Answer, cache: Path) -> tuple[LLMStoryWriter, LLMQAWriter]:
    llm = LLMParams(model="scripted")
    story = LLMStoryWriter(MoviePlotsParams(writer="llm", llm=llm), cache)
    qa = LLMQAWriter(QAPairsParams(writer="llm", llm=llm), cache)
    story.chat = CachedChat(ScriptedClient(llm, answer), cache)
    qa.chat = CachedChat(ScriptedClient(llm, answer), cache)
    return story, qa


def canned(level: str, content: str) -> str:
    return json.dumps(right_answer(level, content))


with tempfile.TemporaryDirectory() as folder:
    PLOT = writers(canned, Path(folder))[0].write(THEME, "m1", 0, L, M, N)  # what the QA writer reads


# ---------------------------------------------------------------- the property
def story_holds(answer: Answer) -> MoviePlot | None:
    """The story writer's outcome under ``answer``: a plot that passes the contracts, or a
    quarantined movie with reasons. Anything else fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        story, _ = writers(answer, Path(folder))
        try:
            plot = story.write(THEME, "m1", 0, L, M, N)
        except QuarantineError as exc:
            assert str(exc) and exc.records and all(r.reason.strip() for r in exc.records)
            validate("quarantine", rows_table("quarantine", [as_row(r) for r in exc.records]), where="quarantine")
            return None
    check_tables(plot)
    assert all(r.reason.strip() for r in plot.quarantine)
    return plot


def qa_holds(answer: Answer) -> QABatch:
    """The QA writer's batch under ``answer``: its QAs and quarantine pass the contracts."""
    with tempfile.TemporaryDirectory() as folder:
        _, qa = writers(answer, Path(folder))
        batch = qa.write(PLOT, 1.0, 0.3, 0)
    validate("qa", rows_table("qa", [as_row(q) for q in batch.qas]), where="qa")
    validate("quarantine", rows_table("quarantine", [as_row(r) for r in batch.quarantine]), where="quarantine")
    assert all(r.reason.strip() for r in batch.quarantine)
    return batch


def test_right_answers_make_a_whole_movie():
    plot = story_holds(canned)
    assert plot is not None and plot.quarantine == () and len(plot.frames) == L * M * N
    batch = qa_holds(canned)
    assert any(q.source.startswith("frame:") and q.level == "level3" for q in batch.qas)


# ---------------------------------------------------------------- faults
def leaves(value: Any, text: Callable[[str], Any] | None = None, number: Callable[[int], Any] | None = None) -> Any:
    """``value`` with its text and whole-number leaves replaced."""
    if isinstance(value, dict):
        return {k: leaves(v, text, number) for k, v in value.items()}
    if isinstance(value, list):
        return [leaves(v, text, number) for v in value]
    if isinstance(value, str) and text:
        return text(value)
    if isinstance(value, int) and not isinstance(value, bool) and number:
        return number(value)
    return value


def lists(value: Any, change: Callable[[list], list], depth: range = range(1, 99), at: int = 0) -> Any:
    """``value`` with the lists ``depth`` levels down (the answer's own fields: 1) replaced by ``change(list)``."""
    if isinstance(value, dict):
        return {k: lists(v, change, depth, at + 1) for k, v in value.items()}
    if isinstance(value, list):
        inner = [lists(v, change, depth, at + 1) for v in value]
        return change(inner) if at in depth else inner
    return value


def many(items: list) -> list:
    """HUGE items: copies of the list's own (numbers for an empty list)."""
    return (items * HUGE)[:HUGE] or list(range(HUGE))


def many_distinct(items: list) -> list:
    """HUGE items, told apart: numbered text, or the list's own items in turn."""
    if items and isinstance(items[0], str):
        return [f"{items[0]} {k}" for k in range(HUGE)]
    return [copy.deepcopy(items[k % len(items)]) for k in range(HUGE)] if items else list(range(HUGE))


UNKNOWN = {"action": "dancing", "scene": "the moon base", "expression": 42, "held_object": {"a": 1},
           "qtype": "whence", "answer_from": "vibes", "clothing_colour": "plaid", "characters": ["Nobody"],
           "speaker": "a stranger", "genre": ["drama"], "style_keyword": "!!!", "correct": 9,
           "evidence_frames": [0, 99], "after_frame": -1, "substory": 99, "tinystory": 0}


def unknown_words(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: UNKNOWN[k] if k in UNKNOWN else unknown_words(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unknown_words(v) for v in value]
    return value


def nested(depth: int) -> str:
    return '{"frames": ' + "[" * depth + "1" + "]" * depth + "}"


FAULTS: dict[str, Callable[[dict], str]] = {
    "refusal": lambda obj: "I'm sorry, but I can't help with that request.",
    "empty": lambda obj: "",
    "whitespace": lambda obj: " \n\t ",
    "truncated": lambda obj: json.dumps(obj)[: len(json.dumps(obj)) // 2],
    "truncated at the start": lambda obj: json.dumps(obj)[:2],
    "fenced": lambda obj: "```json\n" + json.dumps(obj, indent=2) + "\n```",
    "fenced with prose": lambda obj: "Sure! Here it is:\n```\n" + json.dumps(obj) + "\n```\nAnything else?",
    "unclosed fence": lambda obj: "```json\n" + json.dumps(obj),
    "two objects": lambda obj: json.dumps(obj) + "\n" + json.dumps(obj),
    "inside an array": lambda obj: json.dumps([obj]),
    "a bare value": lambda obj: json.dumps("just text"),
    "an empty object": lambda obj: "{}",
    "an empty array": lambda obj: "[]",
    "numbers for text": lambda obj: json.dumps(leaves(obj, text=len)),
    "text for numbers": lambda obj: json.dumps(leaves(obj, number=lambda n: f"number {n}")),
    "nulls": lambda obj: json.dumps(leaves(obj, text=lambda s: None, number=lambda n: None)),
    "booleans for numbers": lambda obj: json.dumps(leaves(obj, number=lambda n: True)),
    "floats for numbers": lambda obj: json.dumps(leaves(obj, number=lambda n: n + 0.5)),
    "huge numbers": lambda obj: json.dumps(leaves(obj, number=lambda n: 10**50)),
    "numbers too long to read": lambda obj: json.dumps(obj).replace(": 1", ": 1" + "0" * HUGE),
    "blank text": lambda obj: json.dumps(leaves(obj, text=lambda s: "   ")),
    "unknown words": lambda obj: json.dumps(unknown_words(obj)),
    "empty lists": lambda obj: json.dumps(lists(obj, lambda items: [])),
    "huge lists": lambda obj: json.dumps(lists(obj, many, range(1, 2))),
    "huge distinct lists": lambda obj: json.dumps(lists(obj, many_distinct, range(1, 2))),
    "huge inner lists": lambda obj: json.dumps(lists(obj, many_distinct, range(2, 99))),
    "lists for objects": lambda obj: json.dumps({k: [v] if isinstance(v, dict) else v for k, v in obj.items()}),
    "text for lists": lambda obj: json.dumps({k: "one, two" if isinstance(v, list) else v for k, v in obj.items()}),
    "nested garbage": lambda obj: nested(50),
    "nested too deep": lambda obj: nested(100_000),
    "unclosed nesting": lambda obj: "[" * 100_000,
    "non-ASCII": lambda obj: json.dumps(leaves(obj, text=lambda s: f"{s} — ünïcödé 字 😀 \u202e"), ensure_ascii=False),
    "control characters": lambda obj: json.dumps(leaves(obj, text=lambda s: f"\x00\x1b[31m{s}\x07\r")),
    "lone surrogates": lambda obj: json.dumps(leaves(obj, text=lambda s: s + "\ud800")),
    "raw lone surrogates": lambda obj: json.dumps(leaves(obj, text=lambda s: s + "\udfff"), ensure_ascii=False),
    "NaN and Infinity": lambda obj: json.dumps(leaves(obj, number=lambda n: float("nan"))).replace("NaN", "Infinity", 1),
    "template slots": lambda obj: json.dumps(leaves(obj, text=lambda s: s + " {{request}} {answer} %s")),
}


def faulty(levels: set[str], fault: Callable[[dict], str]) -> Answer:
    """Right answers, except on ``levels`` (repairs included) where ``fault`` spoils them."""
    def answer(level: str, content: str) -> str:
        obj = right_answer(level, content)
        return fault(obj) if level in levels else json.dumps(obj)

    return answer


@pytest.mark.parametrize("level", ["level1", "level2", "level3"])
@pytest.mark.parametrize("name", sorted(FAULTS))
def test_story_writer_survives(level: str, name: str):
    story_holds(faulty({level}, FAULTS[name]))


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_qa_writer_survives(name: str):
    qa_holds(faulty({"qa"}, FAULTS[name]))


def story_error(answer: Answer) -> QuarantineError:
    with tempfile.TemporaryDirectory() as folder, pytest.raises(QuarantineError) as err:
        writers(answer, Path(folder))[0].write(THEME, "m1", 0, L, M, N)
    return err.value


def test_faults_cost_only_what_they_spoil():
    """Garbage at level 1 costs the movie; at level 3 the frames; in QA the questions; fences cost nothing."""
    assert "level 1 could not be written" in str(story_error(faulty({"level1"}, FAULTS["refusal"])))
    assert "no frames could be written" in str(story_error(faulty({"level3"}, FAULTS["unclosed nesting"])))
    plot = story_holds(faulty({"level2", "level3"}, FAULTS["fenced with prose"]))
    assert plot is not None and plot.quarantine == () and len(plot.frames) == L * M * N
    batch = qa_holds(faulty({"qa"}, FAULTS["nested too deep"]))
    assert len(batch.quarantine) == L * M and all("nested too deeply" in r.reason for r in batch.quarantine)
    assert all(not q.question.startswith("What does Mara do") for q in batch.qas)


def test_a_tinystory_gets_the_questions_asked_for():
    batch = qa_holds(faulty({"qa"}, FAULTS["huge lists"]))
    written = [q for q in batch.qas if q.question.startswith(("What does Mara do", "How does she look"))]
    assert 0 < len(written) <= L * M * QA_PER_TINYSTORY
    assert any(f"beyond the {QA_PER_TINYSTORY} questions asked for" in r.reason for r in batch.quarantine)


# ---------------------------------------------------------------- random mixes
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value (dict keys and list positions), the root first."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, prefix + (i,))
    return out


@st.composite
def spoiled(draw, obj: dict) -> str:
    """A right answer with one random fault: a value swapped or dropped, a fixed fault, random text."""
    kind = draw(st.sampled_from(["right", "swap", "drop", "fault", "text", "cut"]))
    if kind == "right":
        return json.dumps(obj)
    if kind in ("swap", "drop"):
        obj = copy.deepcopy(obj)
        path = draw(st.sampled_from(paths(obj)[1:]))
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        if kind == "drop":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES | st.sampled_from(list(UNKNOWN.values())))
        return json.dumps(obj)
    if kind == "fault":
        return FAULTS[draw(st.sampled_from(sorted(FAULTS)))](obj)
    if kind == "text":
        return draw(st.text(max_size=200))
    text = json.dumps(obj)
    return text[: draw(st.integers(0, len(text)))]


def drawn(data: st.DataObject) -> Answer:
    return lambda level, content: data.draw(spoiled(right_answer(level, content)))


@FUZZ
@given(st.data())
def test_story_writer_survives_random_answers(data):
    story_holds(drawn(data))


@FUZZ
@given(st.data())
def test_qa_writer_survives_random_answers(data):
    qa_holds(drawn(data))
