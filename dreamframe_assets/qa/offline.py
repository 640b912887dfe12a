"""QA pairs: the story levels' questions plus questions grounded in the frames.

A QA is multiple choice (3 or 4 options, exactly one correct) and names the frames
that show its answer. Two rules keep it from being answerable without looking:

- **Options from inside the movie, answers spread evenly.** Every option is a value
  of the same kind that exists in the same movie (another of its people, colours,
  places, actions, lines, events), and the right answer is drawn uniformly from those
  values before a frame showing it is looked for. So how often an option appears
  across a movie's QA says nothing about whether it is right. A movie with fewer than
  three such values gets no question of that kind: a filler from outside the movie
  would never be right, and would be spotted as never right.
- **No question answers another.** People are named by position in the frame
  ("the person furthest to the left") and by their look without their clothing
  colour; a keyframe gets at most one grounded question, and a tinystory (one scene,
  shots that share their cast and place) at most one of each kind, so the answer of
  one question is not the answer of its neighbour. The ``reveal`` gate drops
  whatever still states another question's answer.

Level QAs (what / why / how / where) come from the plot; their wrong options are the
same field of other plot items put in the same sentence. The overview question's
multiple-choice form tells the movie's events in four orders. No qtype may exceed
``max_qtype_share`` of a movie's QAs: the paper's data is 68% "why", a known skew.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence

from ..core.cache import digest
from ..core.plot import Frame, MoviePlot, QABatch, answer_key, field_value, number_qas
from ..core.vocabulary import (
    EXPRESSION_ADJ,
    MAX_OPTIONS,
    MIN_OPTIONS,
    NUMBER_WORDS,
    doing_phrase,
    place_phrase,
    with_article,
)

OPTIONS = MAX_OPTIONS  # fewer than MIN_OPTIONS values of a kind in a movie: no question of that kind
SIDES = ("left", "right")
FRAME_QTYPES = ("who", "action", "location", "count", "colour")
# Qtypes about one person of a frame: one of them per tinystory, so that "who is on the
# left" and "what colour is the person on the left" are never asked of the same shots.
GROUP = {"who": "person", "colour": "person"}
EVENTS = 4  # events told by the overview's multiple-choice options


def person_at(frame: Frame, side: str) -> str:
    """The char_id furthest to the ``side`` of a frame (characters are drawn left to right)."""
    return frame.characters[0 if side == "left" else -1]


def describe_frame(plot: MoviePlot, frame: Frame) -> str:
    """What a frame shows, by the names of its people: 'Nadia and Cyrus are hugging someone.'
    No place and no look, so an order question answers no where or who question."""
    names = [plot.character(c).name for c in frame.characters]
    if len(names) == 1:
        return f"{names[0]} is {doing_phrase(frame.action, frame.held_object)}."
    doing = "hugging one another" if frame.action == "hug" else doing_phrase(frame.action, frame.held_object)
    return f"{', '.join(names[:-1])} and {names[-1]} are {doing}."


def choose_options(answer: str, values: Sequence[str], rng: random.Random) -> tuple[tuple[str, ...], int] | None:
    """The answer and up to three other ``values`` of the movie, shuffled; None with too few."""
    others = [v for v in dict.fromkeys(values) if answer_key(v) != answer_key(answer)]
    picked = rng.sample(others, min(OPTIONS - 1, len(others)))
    if len(picked) + 1 < MIN_OPTIONS:
        return None
    options = [answer, *picked]
    rng.shuffle(options)
    return tuple(options), options.index(answer)


def _qa(level, qtype, question, answer, options, index, evidence, subject, source) -> dict:
    return dict(level=level, qtype=qtype, question=question, answer=answer, options=options,
                answer_index=index, evidence_frames=tuple(evidence), subject=subject, source=source)


# ---------------------------------------------------------------- level QAs
def level_qa(plot: MoviePlot, rng: random.Random) -> list[dict]:
    """The plot's own QAs, each with wrong options of the same shape from the same movie."""
    out = []
    names = [c.name for c in plot.movie.characters]

    def named(text: str) -> set[str]:
        """The people of the question a text names: an answer naming the one asked about
        and wrong options naming others would give the answer away."""
        return {n for n in names if n in text and n in qa.question}

    # Questions answered by an event of the story: each answer is the one right option of its
    # question and a wrong option elsewhere, so a model shown the movie's QA together rules
    # out whatever another question answered. Few of them per movie (a quarter of its events)
    # leave little to rule out.
    events = {answer_key(t.content) for t in plot.tinystories}
    events |= {answer_key(x) for sub in plot.substories for x in (sub.content, sub.cause, sub.outcome)}
    told = [i for i, qa in enumerate(plot.qa) if qa.level != "movie" and _is_event(qa.source)]
    keep_told = set(rng.sample(told, min(len(told), max(1, len(events) // 4))))
    for i, qa in enumerate(plot.qa):
        if i in told and i not in keep_told:
            continue
        if qa.qtype == "overview":
            row = overview_qa(plot, rng)
            if row is not None:
                out.append(row)
            continue
        table, index, name = qa.source.split(":", 2)
        phrases = frame_phrases(plot, name) if table == "frame" else None
        said = phrases.get(int(index)) if phrases is not None else None
        if said is not None and answer_key(said) in qa.answer.lower():  # a frame's fact, asked as evenly as grounded ones
            row = _even_frame_qa(plot, qa, phrases, rng)
            if row is not None:
                out.append(row)
            continue
        pools = _level_pools(plot, qa)
        distractors: list[str] = []
        for pool in pools:
            # Shuffled, then the first of each: a value told by more frames comes first more often,
            # as likely as a wrong option as it is as the answer (which comes from a frame too).
            pool = list(pool)
            rng.shuffle(pool)
            fresh = [p for p in dict.fromkeys(pool) if p not in distractors and answer_key(p) != answer_key(qa.answer)
                     and answer_key(qa.answer) not in answer_key(p)]
            fresh.sort(key=lambda p: named(p) != named(qa.answer))  # those naming whom the answer names first
            distractors += fresh[: OPTIONS - 1 - len(distractors)]
        distractors = _same_place(plot, qa.question, qa.answer, distractors)
        chosen = choose_options(qa.answer, distractors, rng)
        if chosen is None:
            continue  # too little plot to make wrong answers of the same shape
        out.append(_qa(qa.level, qa.qtype, qa.question, qa.answer, *chosen, qa.evidence_frames, None, qa.source))
    return out


def _is_event(source: str) -> bool:
    table, _, name = source.split(":", 2)
    return table in ("substory", "tinystory") and name in ("content", "cause", "outcome")


def _even_frame_qa(plot: MoviePlot, qa, phrases: dict[int, str], rng: random.Random) -> dict | None:
    """A story question about one frame's fact ("What is Zofia holding ...?"), kept with
    probability rarest / its value's count of frames among the movie's most shown values
    (as ``uniform_answers``), its options those values in the answer's sentence: the story
    picks frames as they come, so a movie's commonest object would otherwise be the
    answer most of the time."""
    value = phrases.get(int(qa.source.split(":")[1]))
    start = qa.answer.lower().find(answer_key(value or "\x00"))
    seen = Counter(phrases.values())
    values = even_values(seen)
    if value not in values or start < 0 or rng.random() >= min(seen[v] for v in values) / seen[value]:
        return None
    end = start + len(value)
    sentences = [qa.answer[:start] + v + qa.answer[end:] for v in values]
    options, index = choose_options(qa.answer, sentences, rng)
    return _qa(qa.level, qa.qtype, qa.question, qa.answer, options, index, qa.evidence_frames, None, qa.source)


def _places(plot: MoviePlot) -> dict[str, str | None]:
    return {loc.name: loc.kind for loc in plot.movie.locations}


def frame_phrases(plot: MoviePlot, name: str) -> dict[int, str] | None:
    """A frame field as the words a sentence says it with, per frame: 'a lantern',
    'holding a lantern', 'happy', 'in the pine forest'."""
    places = _places(plot)
    if name == "held_object":
        return {f.frame_index: with_article(f.held_object) for f in plot.frames if f.held_object}
    if name == "action":
        return {f.frame_index: doing_phrase(f.action, f.held_object) for f in plot.frames}
    if name == "expression":
        return {f.frame_index: EXPRESSION_ADJ[f.expression] for f in plot.frames}
    if name == "location":
        return {f.frame_index: place_phrase(places.get(f.location), f.location) for f in plot.frames}
    return None


def _level_pools(plot: MoviePlot, qa) -> list[list[str]]:
    """Wrong answers in the answer's own sentence: its value swapped for another of the movie's,
    the same field of other items first, then other text of the same kind."""
    table, index, name = qa.source.split(":", 2)
    phrases = frame_phrases(plot, name) if table == "frame" else None
    if phrases is not None and int(index) in phrases:
        value = phrases[int(index)]
        pools = [[v for v in phrases.values() if v != value]]  # one per frame that shows it
    else:
        value = field_value(plot, qa.source)
        if table in ("substory", "tinystory") and name == "scene":
            value = place_phrase(_places(plot).get(value), value)
        same, related = _source_pool(plot, qa.source)
        pools = [*_same_mood(plot, qa.question, qa.source, same), related]
    start = qa.answer.lower().find(answer_key(value))
    if start < 0 or not answer_key(value):
        return []
    end = start + len(answer_key(value))

    def splice(other: str) -> str:
        piece = other.strip().rstrip(".")
        piece = piece[:1].upper() + piece[1:] if start == 0 else _lower_first(piece)
        return qa.answer[:start] + piece + qa.answer[end:]

    return [[splice(o) for o in pool] for pool in pools]


def _source_pool(plot: MoviePlot, source: str) -> tuple[list[str], list[str]]:
    """The same field of every other item of the same table first, then other plot text of
    the same kind (events for events, places for places)."""
    table, index, name = source.split(":", 2)
    places = _places(plot)
    if table == "substory":
        items = [(str(s.substory_index), s) for s in plot.substories]
    elif table == "tinystory":
        items = [(f"{t.substory_index}.{t.tinystory_index}", t) for t in plot.tinystories]
    elif table == "qa":
        own = plot.qa[int(index)].qtype
        items = [(str(i), q) for i, q in enumerate(plot.qa) if q.qtype == own and q.level != "movie"]
    else:
        items = []
    same = [str(getattr(item, name)) for key, item in items if key != index and getattr(item, name, None) is not None]
    if name == "scene":
        same = [place_phrase(places.get(s), s) for s in same]
        related = [place_phrase(kind, place) for place, kind in places.items()
                   if place in {f.location for f in plot.frames}]
    elif table == "qa":
        related = [q.answer for i, q in enumerate(plot.qa) if str(i) != index and q.level != "movie"]
    else:
        related = [s.cause for s in plot.substories] + [s.outcome for s in plot.substories]
        related += [t.content for t in plot.tinystories] + [s.content for s in plot.substories]
    return same, related


def _same_mood(plot: MoviePlot, question: str, source: str, same: list[str]) -> list[list[str]]:
    """For "Why does X look worried in ...?", the events of scenes where someone looks worried
    first: an event that fits the look asked about would otherwise stand out among ones
    that do not."""
    table, index, name = source.split(":", 2)
    looks = [e for e, adj in EXPRESSION_ADJ.items() if re.search(rf"\blooks? {adj}\b", question)]
    if table != "tinystory" or name != "content" or not looks:
        return [same]
    shown = {}
    for f in plot.frames:
        shown.setdefault(f"{f.substory_index}.{f.tinystory_index}", set()).add(f.expression)
    fitting = {str(t.content) for t in plot.tinystories
               if f"{t.substory_index}.{t.tinystory_index}" != index
               and shown.get(f"{t.substory_index}.{t.tinystory_index}", set()) & set(looks)}
    return [[v for v in same if v in fitting], [v for v in same if v not in fitting]]


def _same_place(plot: MoviePlot, question: str, answer: str, distractors: list[str]) -> list[str]:
    """Move wrong options to the place the answer names when the question names it too, so
    that the place does not give the answer away; "in the X" is moved with its preposition."""
    places = _places(plot)
    asked = [p for p in places if p in question and p in answer]
    if len(asked) != 1:
        return distractors
    target = asked[0]
    out = []
    for d in distractors:
        moved = d
        for p, kind in places.items():
            if p != target and p in moved:
                phrase = place_phrase(kind, p)
                if phrase in moved:
                    moved = moved.replace(phrase, place_phrase(places[target], target))
                else:
                    moved = moved.replace(p, target)
        fresh = moved not in out and answer_key(moved) != answer_key(answer) and answer_key(answer) not in answer_key(moved)
        out.append(moved if fresh else d)
    return out


def _lower_first(text: str) -> str:
    """Lower-case a leading capital unless it starts a name-like word ("The" -> "the")."""
    first = text.split(" ", 1)[0]
    return text[0].lower() + text[1:] if first in ("The", "A", "An", "They", "He", "She", "It") else text


def overview_qa(plot: MoviePlot, rng: random.Random) -> dict | None:
    """The overview question in multiple-choice form: four of the movie's events told in story
    order, and the same four in the three other cyclic orders. Every option tells the same
    events (none is the odd one out, none is the centre the others were edited from); they
    differ only in what happens first, next and last. Open-ended, the answer is the first option."""
    first: dict[str, int] = {}
    for i, t in enumerate(plot.tinystories):
        if not re.search(r"\d", t.content):  # "Keyframes 1013-1023 at ...": numbers would tell the order
            first.setdefault(answer_key(t.content), i)  # an event told twice would make two options equal
    if len(first) < EVENTS:
        return None
    picks = sorted(rng.sample(sorted(first.values()), EVENTS))
    chosen = [plot.tinystories[i].content.strip().rstrip(".") for i in picks]
    answer = _tell(chosen)
    options = [_tell(chosen[k:] + chosen[:k]) for k in range(EVENTS)]
    rng.shuffle(options)
    evidence = [f.frame_index for f in plot.frames
                if (f.substory_index, f.tinystory_index) in
                {(plot.tinystories[i].substory_index, plot.tinystories[i].tinystory_index) for i in picks}]
    qa = next(q for q in plot.qa if q.qtype == "overview")
    return _qa(qa.level, "overview", qa.question, answer, tuple(options), options.index(answer),
               evidence or qa.evidence_frames, None, "tinystories:" + ",".join(str(i) for i in picks) + ":events")


def _tell(events: list[str]) -> str:
    steps = ["First, " + _lower_first(events[0])] + [f"then {_lower_first(e)}" for e in events[1:-1]]
    return "; ".join(steps) + f"; and finally {_lower_first(events[-1])}."


def overview_events(plot: MoviePlot, source: str) -> str:
    """The overview answer a ``tinystories:i,j,k,l:events`` source stands for (for the oracle)."""
    picks = [int(i) for i in source.split(":")[1].split(",")]
    return _tell([plot.tinystories[i].content.strip().rstrip(".") for i in picks])


# ---------------------------------------------------------------- grounded QAs
def _frame_facts(plot: MoviePlot, frame: Frame, qtype: str) -> list[tuple[str, str, str]]:
    """(value, question, source) for each question of ``qtype`` the frame can answer."""
    where = f"keyframe {frame.frame_index + 1}"
    k = frame.frame_index
    if qtype == "count":
        return [(NUMBER_WORDS[len(frame.characters) - 1], f"How many people are in {where}?", f"frame:{k}:count")]
    if qtype == "location":
        return [(frame.location, f"Where does {where} take place?", f"frame:{k}:location")]
    if qtype == "action":
        return [(doing_phrase(frame.action, frame.held_object),
                 f"What is the person furthest to the left doing in {where}?", f"frame:{k}:action")]
    out = []
    for side in SIDES:
        person = plot.character(person_at(frame, side))
        if qtype == "who":
            out.append((person.look, f"Who is furthest to the {side} in {where}?", f"frame:{k}:who:{side}"))
        elif qtype == "colour":
            out.append((person.clothing_colour, f"What colour is the person furthest to the {side} wearing in {where}?",
                        f"frame:{k}:colour:{side}"))
    return out


# Qtypes whose facts persist through a tinystory's shots (its cast, its place): one question
# of each per tinystory. Actions change from shot to shot: one per frame.
PER_SCENE = ("who", "colour", "count", "location")


def even_values(seen: Counter) -> list[str]:
    """The 3 or 4 values found most often (4 when the fourth is found at least half as often
    as the third), or none when there are fewer than 3: the values a question offers."""
    ranked = sorted(seen, key=lambda v: (-seen[v], digest(v)))
    if len(ranked) < MIN_OPTIONS:
        return []
    k = OPTIONS if len(ranked) >= OPTIONS and seen[ranked[OPTIONS - 1]] * 2 >= seen[ranked[MIN_OPTIONS - 1]] else MIN_OPTIONS
    return sorted(ranked[:k])


def uniform_answers(units: list[dict[str, list]], rng: random.Random) -> tuple[list[str], list[tuple[str, object]]]:
    """Pick at most one (value, slot) per unit so that every chosen value is equally likely
    to be the answer, and the values a question may offer.

    ``units`` are groups of slots of which one may be asked (a tinystory, a frame, a line),
    each as value -> its slots there. The values are the 3 or 4 found in most units; per
    unit a value is drawn uniformly from them, kept if the unit has it, with probability
    rarest / its own count of units. Taking whatever a unit offers would make common
    values common answers, which a model learns without looking.
    """
    seen = Counter(v for unit in units for v in unit)
    values = even_values(seen)
    if not values:
        return [], []
    rarest = min(seen[v] for v in values)
    picks = []
    for i in rng.sample(range(len(units)), len(units)):
        value = rng.choice(values)
        if units[i].get(value) and rng.random() < rarest / seen[value]:
            picks.append((value, rng.choice(units[i][value])))
    return values, picks


def grounded_qa(plot: MoviePlot, per_frame: float, rng: random.Random) -> list[dict]:
    """Questions whose answers are read off the structured frames: per qtype, answers drawn
    evenly from the movie's values (``uniform_answers``), a keyframe asked at most once, and
    at most ``per_frame`` x frames of them."""
    looks = [c.look for c in plot.movie.characters]
    kinds = [q for q in FRAME_QTYPES if q != "who" or len(set(looks)) == len(looks)]
    rng.shuffle(kinds)
    used_frames: set[int] = set()
    used_scenes: set[tuple] = set()
    out: list[dict] = []
    for qtype in kinds:
        group = GROUP.get(qtype, qtype)
        units: dict[tuple, dict[str, list]] = {}
        for frame in plot.frames:
            scene = (frame.substory_index, frame.tinystory_index)
            if frame.frame_index in used_frames or (group, *scene) in used_scenes:
                continue
            unit = units.setdefault(scene if qtype in PER_SCENE else (frame.frame_index,), {})
            for value, question, source in _frame_facts(plot, frame, qtype):
                unit.setdefault(value, []).append((frame, question, source))
        values, picks = uniform_answers(list(units.values()), rng)
        for value, (frame, question, source) in picks:
            used_frames.add(frame.frame_index)
            used_scenes.add((group, frame.substory_index, frame.tinystory_index))
            options, index = choose_options(value, values, rng)
            subject = person_at(frame, source.rsplit(":", 1)[1]) if qtype in GROUP else None
            out.append(_qa("grounded", qtype, question, value, options, index, (frame.frame_index,), subject, source))
    budget = int(min(per_frame, 1.0) * len(plot.frames))
    if len(out) > budget:
        out = rng.sample(out, budget)
    out.sort(key=lambda r: (r["evidence_frames"][0], r["qtype"]))
    return out + _order_questions(plot, rng) + _speaker_questions(plot, rng)


def _order_questions(plot: MoviePlot, rng: random.Random) -> list[dict]:
    """"Which happens first/last?" over four frames with distinct descriptions."""
    by_text: dict[str, int] = {}
    for f in plot.frames:
        by_text.setdefault(describe_frame(plot, f), f.frame_index)
    frames = sorted(by_text.values())
    out: list[dict] = []
    for i in range(max(1, len(plot.frames) // 6)):
        if len(frames) < OPTIONS:
            break
        # each description in one question only: one answered "first" elsewhere would say it is early
        chosen = sorted(rng.sample(frames, OPTIONS))
        frames = [f for f in frames if f not in chosen]
        which = "first" if i % 2 == 0 else "last"
        target = chosen[0] if which == "first" else chosen[-1]
        texts = [describe_frame(plot, plot.frames[j]) for j in chosen]
        answer = describe_frame(plot, plot.frames[target])
        options = list(texts)
        rng.shuffle(options)
        out.append(_qa("grounded", "order", f"Which of these happens {which} in the movie?", answer, tuple(options),
                       options.index(answer), chosen, which, f"frames:{which}"))
    return out


def _speaker_questions(plot: MoviePlot, rng: random.Random) -> list[dict]:
    """'Who says "..."?', answered by the speaker's look; speakers drawn evenly, a line per unit."""
    said = Counter(line.text for line in plot.dialogue)
    looks = {c.char_id: c.look for c in plot.movie.characters}
    if len(set(looks.values())) != len(looks):
        return []
    # the same words from two mouths would have no one answer
    units = [{looks[line.speaker]: [line]} for line in plot.dialogue if said[line.text] == 1]
    values, picks = uniform_answers(units, rng)
    out = []
    for value, line in picks[: len(plot.dialogue) // 2]:
        options, index = choose_options(value, values, rng)
        out.append(_qa("grounded", "speaker", f'Who says "{line.text}"?', value, options, index,
                       (line.after_frame,), line.speaker, f"dialogue:{line.line_index}:speaker"))
    out.sort(key=lambda r: r["evidence_frames"][0])
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
        return "offline-qa/2"

    def write(self, plot: MoviePlot, grounded_per_frame: float, max_qtype_share: float, seed: int) -> QABatch:
        rng = random.Random(digest("qa", plot.movie.movie_id, seed))
        rows = level_qa(plot, rng) + grounded_qa(plot, grounded_per_frame, rng)
        return QABatch(number_qas(plot.movie.movie_id, cap_qtypes(rows, max_qtype_share)))
