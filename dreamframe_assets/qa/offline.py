"""QA pairs: the story levels' questions plus questions grounded in the frames.

Every QA is multiple choice with 4 options, exactly one correct, and names the
frames that show its answer. Level QAs (what / why / how / where / overview) come
from the plot; their wrong options are the same field of *other* plot items put in
the same sentence, so the form of an option never gives the answer away. Grounded
QAs (who, count, action, location, colour, order, speaker) are read off the
structured frames, which is what the keyframes draw. No qtype may exceed
``max_qtype_share`` of a movie's QAs: the paper's data is 68% "why", a known skew.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from ..core.cache import digest
from ..core.plot import Frame, MoviePlot, QABatch, answer_key, field_value, number_qas
from ..core.vocabulary import ACTION_VERBS, ACTIONS, CLOTHING_COLOURS, OBJECTS

OPTIONS = 4
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six")
POSITIONS = {1: ("only",), 2: ("left", "right"), 3: ("left", "middle", "right")}
GROUNDED_ROTATION = ("who", "action", "location", "count", "colour")


def _source_pool(plot: MoviePlot, source: str) -> tuple[list[str], list[str]]:
    """Candidate wrong answers: the same field of every other item of the same table
    first, then other plot text of the same kind (events for events, places for places)."""
    table, index, name = source.split(":", 2)
    if table == "substory":
        items = [(str(s.substory_index), s) for s in plot.substories]
    elif table == "tinystory":
        items = [(f"{t.substory_index}.{t.tinystory_index}", t) for t in plot.tinystories]
    elif table == "frame":
        items = [(str(f.frame_index), f) for f in plot.frames]
    elif table == "qa":
        own = plot.qa[int(index)].qtype
        items = [(str(i), q) for i, q in enumerate(plot.qa) if q.qtype == own and q.level != "movie"]
    else:
        items = []
    same = [str(getattr(item, name)) for key, item in items
            if key != index and getattr(item, name, None) is not None]
    if name in ("scene", "location"):
        related = [loc.name for loc in plot.movie.locations]
    elif name == "held_object":
        related = list(OBJECTS)
    elif table == "qa":
        related = [q.answer for i, q in enumerate(plot.qa) if str(i) != index and q.level != "movie"]
    else:
        related = [s.cause for s in plot.substories] + [s.outcome for s in plot.substories]
        related += [t.content for t in plot.tinystories] + [s.content for s in plot.substories]
    return same, related


def describe_frame(plot: MoviePlot, frame: Frame) -> str:
    """A short, name-free description of what a frame shows."""
    people = " and ".join(plot.character(c).appearance for c in frame.characters)
    verb = ACTION_VERBS[frame.action]
    thing = f" a {frame.held_object}" if frame.action == "hold" and frame.held_object else ""
    return f"{people} {'are' if len(frame.characters) > 1 else 'is'} {verb}{thing} in {frame.location}"


def swap_colour(appearance: str, colour: str) -> str:
    """The same description of a person, wearing another colour."""
    for name in sorted(CLOTHING_COLOURS, key=len, reverse=True):
        if appearance.endswith(f" {name}"):
            return appearance[: -len(name)] + colour
    return f"{appearance} in {colour}"


# ---------------------------------------------------------------- options
def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) > 3}


def _pick_distractors(answer: str, pool: list[str], rng: random.Random, k: int = OPTIONS - 1,
                      like: str = "") -> list[str]:
    """Up to ``k`` wrong options from ``pool``; with ``like`` (the question), those sharing the
    most words with it first, so the right answer is not the only option that echoes the question."""
    seen = {answer_key(answer)}
    out: list[str] = []
    candidates = [c for c in dict.fromkeys(pool) if c and c != "None"]
    rng.shuffle(candidates)
    if like:
        words = _content_words(like)
        candidates.sort(key=lambda c: -len(words & _content_words(c)))
    for c in candidates:
        if answer_key(c) not in seen and answer_key(answer) not in answer_key(c):
            seen.add(answer_key(c))
            out.append(c)
        if len(out) == k:
            break
    return out


def _shuffle(answer: str, distractors: list[str], rng: random.Random) -> tuple[tuple[str, ...], int]:
    options = [answer, *distractors]
    rng.shuffle(options)
    return tuple(options), options.index(answer)


def _person_pool(plot: MoviePlot, exclude: set[str]) -> list[str]:
    """Appearances of people to offer as wrong answers: absent cast, then recoloured cast."""
    cast = plot.movie.characters
    pool = [c.appearance for c in cast if c.char_id not in exclude]
    used = {c.clothing_colour for c in cast}
    spare = [name for name in CLOTHING_COLOURS if name not in used]
    for i, colour in enumerate(spare):
        pool.append(swap_colour(cast[i % len(cast)].appearance, colour))
    return pool


# ---------------------------------------------------------------- writers
def level_qa(plot: MoviePlot, rng: random.Random) -> list[dict]:
    """The plot's own QAs, with same-shape wrong options."""
    out = []
    for qa in plot.qa:
        pools = _level_pools(plot, qa)
        distractors: list[str] = []
        for pool in pools:
            if len(distractors) < OPTIONS - 1:
                fresh = [p for p in pool if p not in distractors]
                distractors += _pick_distractors(qa.answer, fresh, rng, OPTIONS - 1 - len(distractors), like=qa.question)
        if len(distractors) < OPTIONS - 1:
            continue  # too little plot to make three wrong answers of the same shape
        distractors = _same_place(plot, qa.question, qa.answer, distractors)
        options, index = _shuffle(qa.answer, distractors, rng)
        out.append(
            dict(level=qa.level, qtype=qa.qtype, question=qa.question, answer=qa.answer,
                 options=options, answer_index=index, evidence_frames=qa.evidence_frames,
                 subject=None, source=qa.source)
        )
    return out


def _same_place(plot: MoviePlot, question: str, answer: str, distractors: list[str]) -> list[str]:
    """Move wrong options to the place the question names, so the place does not give the answer away."""
    places = [loc.name for loc in plot.movie.locations]
    asked = [p for p in places if p in question and p in answer]
    if len(asked) != 1:
        return distractors
    out = []
    for d in distractors:
        moved = d
        for p in places:
            if p != asked[0] and p in moved:
                moved = moved.replace(p, asked[0])
        fresh = moved not in out and answer_key(moved) != answer_key(answer) and answer_key(answer) not in answer_key(moved)
        out.append(moved if fresh else d)
    return out


def _level_pools(plot: MoviePlot, qa) -> list[list[str]]:
    """Wrong answers in the answer's own sentence: its source value swapped for another."""
    value = answer_key(field_value(plot, qa.source))
    start = qa.answer.lower().find(value)
    if qa.qtype == "overview" or start < 0 or not value:
        return [_overview_variants(plot, qa.answer)]
    end = start + len(value)

    def splice(other: str) -> str:
        piece = other.strip().rstrip(".")
        piece = piece[:1].upper() + piece[1:] if start == 0 else _lower_first(piece)
        return qa.answer[:start] + piece + qa.answer[end:]

    same, related = _source_pool(plot, qa.source)
    return [[splice(o) for o in same], [splice(o) for o in related], _overview_variants(plot, qa.answer)]


def _lower_first(text: str) -> str:
    """Lower-case a leading capital unless it starts a name-like word ("The" -> "the")."""
    first = text.split(" ", 1)[0]
    return text[0].lower() + text[1:] if first in ("The", "A", "An", "They", "He", "She", "It") else text


def _overview_variants(plot: MoviePlot, text: str) -> list[str]:
    """Wrong versions of a text: its places and people swapped for others of the movie."""
    places = [loc.name for loc in plot.movie.locations]
    people = [c.name for c in plot.movie.characters]
    variants = []
    for shift in range(1, len(places)):
        v = text
        for i, place in enumerate(places):
            if place in v:
                v = v.replace(place, f"\x00{i}\x00")
        for i in range(len(places)):
            v = v.replace(f"\x00{i}\x00", places[(i + shift) % len(places)])
        if len(people) > 1:
            for i, name in enumerate(people):
                v = v.replace(name, f"\x01{i}\x01")
            for i in range(len(people)):
                v = v.replace(f"\x01{i}\x01", people[(i + shift) % len(people)])
        if v != text:
            variants.append(v)
    return variants


def grounded_qa(plot: MoviePlot, per_frame: float, rng: random.Random) -> list[dict]:
    """Questions whose answers are read off the structured frames."""
    out: list[dict] = []
    budget = 0.0
    turn = 0
    for frame in plot.frames:
        budget += per_frame
        while budget >= 1.0:
            budget -= 1.0
            for _ in range(len(GROUNDED_ROTATION)):
                qtype = GROUNDED_ROTATION[turn % len(GROUNDED_ROTATION)]
                turn += 1
                qa = _frame_question(plot, frame, qtype, rng)
                if qa is not None:
                    out.append(qa)
                    break
    out += _order_questions(plot, rng)
    out += _speaker_questions(plot, rng)
    return out


def _frame_question(plot: MoviePlot, frame: Frame, qtype: str, rng: random.Random) -> dict | None:
    k = frame.frame_index
    where = f"keyframe {k + 1}"
    present = list(frame.characters)
    subject: str | None = None
    if qtype == "who":
        subject = rng.choice(present)
        answer = plot.character(subject).appearance
        question = f"Which of these people can be seen in {where}?"
        pool = _person_pool(plot, exclude=set(present))
    elif qtype == "count":
        answer = NUMBER_WORDS[len(present) - 1]
        question = f"How many people are in {where}?"
        pool = [w for w in NUMBER_WORDS[:OPTIONS] if w != answer] + list(NUMBER_WORDS[OPTIONS:])
        pool = pool[: OPTIONS - 1]
    elif qtype == "action":
        subject = present[0]
        who = plot.character(subject).appearance
        answer = ACTION_VERBS[frame.action]
        question = f"What is {who} doing in {where}?"
        pool = [ACTION_VERBS[a] for a in ACTIONS if a != frame.action]
    elif qtype == "location":
        answer = frame.location
        question = f"Where does {where} take place?"
        pool = [loc.name for loc in plot.movie.locations if loc.kind != frame.location_kind]
    elif qtype == "colour":
        slot = rng.randrange(len(present))
        subject = present[slot]
        answer = plot.character(subject).clothing_colour
        position = POSITIONS[len(present)][slot] if len(present) in POSITIONS else None
        if position is None:
            return None
        person = "the only person" if position == "only" else f"the person on the {position}" if position != "middle" else "the person in the middle"
        question = f"What colour is {person} wearing in {where}?"
        pool = [c for c in CLOTHING_COLOURS if c != answer]
    else:
        return None
    distractors = _pick_distractors(answer, pool, rng)
    if len(distractors) < OPTIONS - 1:
        return None
    options, index = _shuffle(answer, distractors, rng)
    return dict(level="grounded", qtype=qtype, question=question, answer=answer, options=options,
                answer_index=index, evidence_frames=(k,), subject=subject, source=f"frame:{k}:{qtype}")


def _order_questions(plot: MoviePlot, rng: random.Random) -> list[dict]:
    """"Which happens first/last?" over four frames with distinct descriptions."""
    by_text: dict[str, int] = {}
    for f in plot.frames:
        by_text.setdefault(describe_frame(plot, f), f.frame_index)
    frames = sorted(by_text.values())
    count = max(1, len(plot.frames) // 6)
    out = []
    if len(frames) < OPTIONS:
        return out
    for i in range(count):
        chosen = sorted(rng.sample(frames, OPTIONS))
        which = "first" if i % 2 == 0 else "last"
        target = chosen[0] if which == "first" else chosen[-1]
        texts = [describe_frame(plot, plot.frames[j]) for j in chosen]
        answer = describe_frame(plot, plot.frames[target])
        options, index = _shuffle(answer, [t for t in texts if t != answer], rng)
        out.append(dict(level="grounded", qtype="order",
                        question=f"Which of these happens {which} in the movie?",
                        answer=answer, options=options, answer_index=index,
                        evidence_frames=tuple(chosen), subject=which, source=f"frames:{which}"))
    return out


def _speaker_questions(plot: MoviePlot, rng: random.Random) -> list[dict]:
    out = []
    said = Counter(line.text for line in plot.dialogue)
    for line in plot.dialogue[::2]:
        if said[line.text] > 1:
            continue  # the same words from two mouths: "who says" would have no one answer
        answer = plot.character(line.speaker).appearance
        distractors = _pick_distractors(answer, _person_pool(plot, exclude={line.speaker}), rng)
        if len(distractors) < OPTIONS - 1:
            continue
        options, index = _shuffle(answer, distractors, rng)
        out.append(dict(level="grounded", qtype="speaker", question=f'Who says "{line.text}"?',
                        answer=answer, options=options, answer_index=index,
                        evidence_frames=(line.after_frame,), subject=line.speaker,
                        source=f"dialogue:{line.line_index}:speaker"))
    return out


def cap_qtypes(rows: list[dict], max_share: float) -> list[dict]:
    """Drop QAs of over-represented qtypes (grounded ones, last first) until none exceeds the cap."""
    rows = list(rows)
    while rows:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["qtype"]] = counts.get(r["qtype"], 0) + 1
        worst = max(counts, key=lambda q: counts[q])
        # With few qtypes the cap may be unreachable: an even split is then the best.
        if counts[worst] <= max(max_share, 1 / len(counts)) * len(rows):
            return rows
        same = [i for i, r in enumerate(rows) if r["qtype"] == worst]
        grounded = [i for i in same if rows[i]["level"] == "grounded"]
        rows.pop(max(grounded or same))
    return rows


class OfflineQAWriter:
    """Level QAs with same-shape distractors plus frame-grounded QAs; deterministic."""

    name = "offline"

    def identity(self) -> str:
        return "offline-qa/1"

    def write(self, plot: MoviePlot, grounded_per_frame: float, max_qtype_share: float, seed: int) -> QABatch:
        rng = random.Random(digest("qa", plot.movie.movie_id, seed))
        rows = level_qa(plot, rng) + grounded_qa(plot, grounded_per_frame, rng)
        return QABatch(number_qas(plot.movie.movie_id, cap_qtypes(rows, max_qtype_share)))
