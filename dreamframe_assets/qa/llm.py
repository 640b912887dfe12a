"""The LLM QA writer: per tinystory, multiple-choice questions about its frames.

Its answers are held to the offline QA writer's rules: each answer contains the plot
field its ``answer_from`` names, so the oracle can look it up again; items that break
a rule are quarantined with their prompt, and the rest of the movie goes on.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Sequence

from ..core.cache import digest
from ..core.params import QAPairsParams
from ..core.plot import (
    Frame,
    MoviePlot,
    QABatch,
    Quarantined,
    Tinystory,
    answer_key,
    number_qas,
)
from ..core.vocabulary import ACTION_VERBS, STORY_QTYPES
from ..models.answers import (
    FRAME_FIELDS,
    INT,
    LEVEL3_SOURCES,
    QTYPE,
    STR,
    answer_field,
    bad_qa_records,
    cast_lines,
    frame_numbers,
    json_object,
    must_contain,
    need,
    read_qtype,
    user_message,
)
from ..models.llm import CachedChat, ask_json, load_prompt, make_client
from .offline import cap_qtypes, grounded_qa, level_qa

VERSION = 1
QA_PER_TINYSTORY = 2


def qa_schema(count: int) -> dict:
    item = json_object({
        "qtype": QTYPE, "question": STR, "answer_from": {"type": "string", "enum": list(LEVEL3_SOURCES)},
        "options": {"type": "array", "items": STR, "minItems": 4, "maxItems": 4},
        "correct": {"type": "integer", "minimum": 1, "maximum": 4},
        "evidence_frames": {"type": "array", "items": INT, "minItems": 1},
    })
    return {"title": "qa", **json_object({"qas": {"type": "array", "items": item, "minItems": 1, "maxItems": count}})}


def _frame_line(plot: MoviePlot, f: Frame) -> str:
    who = " and ".join(f"{plot.character(c).name} ({plot.character(c).appearance})" for c in f.characters)
    doing = ACTION_VERBS[f.action] + (f" a {f.held_object}" if f.action == "hold" and f.held_object else "")
    extra = f", carrying a {f.held_object}" if f.held_object and f.action != "hold" else ""
    return f"- keyframe {f.frame_index + 1}: {who} {'are' if len(f.characters) > 1 else 'is'} {doing}{extra}, with a {f.expression} expression"


def read_qa_answer(obj: Any, plot: MoviePlot, tiny: Tinystory, frames: Sequence[Frame],
                   asked: int = QA_PER_TINYSTORY) -> tuple[list[dict], list[tuple[int, Any, str]]]:
    """Checked QA rows for one tinystory, and the items that failed (ValueError if none is usable).

    A row's ``source`` names the plot field its correct option contains, and no
    wrong option contains it, so the oracle can verify the answer from the plot.
    Usable questions beyond the ``asked`` fail too: a tinystory gets its share, however
    long the model's list.
    """
    items = obj.get("qas") if isinstance(obj, dict) else obj
    if not isinstance(items, list) or not items:
        raise ValueError("expected {\"qas\": [...]} with at least one question")
    numbers = [f.frame_index + 1 for f in frames]
    tid = f"{tiny.substory_index}.{tiny.tinystory_index}"
    good, bad = [], []
    for k, item in enumerate(items):
        where = f"qa {k + 1}"
        try:
            qtype = read_qtype(item, where)
            question = need(item, "question", str, where)
            options = need(item, "options", list, where)
            if len(options) != 4 or not all(isinstance(o, str) and o.strip() for o in options):
                raise ValueError(f"{where}: needs exactly 4 non-empty options, got {options!r}")
            options = [" ".join(o.split()) for o in options]
            if len({answer_key(o) for o in options}) != 4:
                raise ValueError(f"{where}: the 4 options are not distinct")
            correct = need(item, "correct", int, where)
            if not 1 <= correct <= 4:
                raise ValueError(f"{where}: correct {correct} is not from 1 to 4")
            evidence = frame_numbers(item.get("evidence_frames") or [], numbers[0], numbers[-1], where) or numbers
            field = answer_field(item, LEVEL3_SOURCES, where)
            name = field.split(" ")[1]
            if field in FRAME_FIELDS:
                frame = plot.frames[evidence[0] - 1]
                value, source = getattr(frame, name), f"frame:{frame.frame_index}:{name}"
                if value is None:
                    raise ValueError(f"{where}: keyframe {evidence[0]} holds no object")
            else:
                value, source = getattr(tiny, name), f"tinystory:{tid}:{name}"
            answer = options[correct - 1]
            must_contain(answer, value, where)
            if any(answer_key(value) in o.lower() for i, o in enumerate(options) if i != correct - 1):
                raise ValueError(f"{where}: a wrong option also contains {value!r}")
            if len(good) == asked:
                raise ValueError(f"{where}: beyond the {asked} questions asked for")
            good.append(dict(level="level3", qtype=qtype, question=question, answer=answer, options=tuple(options),
                             answer_index=correct - 1, evidence_frames=tuple(e - 1 for e in evidence),
                             subject=None, source=source))
        except ValueError as exc:
            bad.append((k, item, str(exc)))
    if not good:
        raise ValueError("no usable question: " + "; ".join(reason for _, _, reason in bad))
    return good, bad


class LLMQAWriter:
    """The plot's level QAs and frame-grounded QAs (as offline) plus model-written 4-option QAs per tinystory."""

    name = "llm"

    def __init__(self, params: QAPairsParams, cache_dir: Path):
        self.params = params
        self.chat = CachedChat(make_client(params.llm, "qa_pairs.llm"), Path(cache_dir))
        self.prompt = load_prompt("qa")

    def identity(self) -> str:
        return (f"llm-qa/{VERSION}|{self.chat.identity()}|{json.dumps(self.chat.sampling(), sort_keys=True)}|"
                f"{self.prompt.tag},{load_prompt('repair').tag}")

    def usage(self) -> dict[str, int]:
        return self.chat.usage()

    def write(self, plot: MoviePlot, grounded_per_frame: float, max_qtype_share: float, seed: int) -> QABatch:
        mid = plot.movie.movie_id
        rng = random.Random(digest("qa-llm", mid, seed))
        rows = level_qa(plot, rng) + grounded_qa(plot, grounded_per_frame, rng)
        groups = [(t, [f for f in plot.frames if (f.substory_index, f.tinystory_index) == (t.substory_index, t.tinystory_index)])
                  for t in plot.tinystories]
        groups = [(t, fs) for t, fs in groups if fs]
        requests, validators, steps = [], [], []
        for n, (t, fs) in enumerate(groups):
            qtypes = [STORY_QTYPES[(n * QA_PER_TINYSTORY + k) % len(STORY_QTYPES)] for k in range(QA_PER_TINYSTORY)]
            said = [x for x in plot.dialogue if fs[0].frame_index <= x.after_frame <= fs[-1].frame_index]
            dialogue = "\n".join(f'- after keyframe {x.after_frame + 1}, {plot.character(x.speaker).name}: "{x.text}"'
                                 for x in said) or "(none)"
            requests.append(user_message(self.prompt.render(
                characters=cast_lines(plot.movie.characters), tiny_title=t.title, tiny_scene=t.scene,
                tiny_content=t.content, frames="\n".join(_frame_line(plot, f) for f in fs), dialogue=dialogue,
                count=QA_PER_TINYSTORY, qtypes=", ".join(qtypes),
            )))
            validators.append(lambda o, t=t, fs=fs: read_qa_answer(o, plot, t, fs))
            steps.append(f"qa:{t.substory_index}.{t.tinystory_index}")
        results = ask_json(self.chat, requests, validators, steps, mid, "qa_pairs", qa_schema(QA_PER_TINYSTORY),
                           self.prompt.tag, self.params.llm.seed + seed)
        quarantine: list[Quarantined] = []
        for msg, step, (value, failed) in zip(requests, steps, results):
            if value is None:
                quarantine.append(failed)
                continue
            good, bad = value
            for row in good:  # models tend to put the right answer first: shuffle
                options = list(row["options"])
                rng.shuffle(options)
                rows.append({**row, "options": tuple(options), "answer_index": options.index(row["answer"])})
            quarantine += bad_qa_records(bad, mid, "qa_pairs", step, msg)
        return QABatch(number_qas(mid, cap_qtypes(rows, max_qtype_share)), tuple(quarantine))
