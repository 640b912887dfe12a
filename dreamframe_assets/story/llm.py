"""The LLM story writer: stage 1 (the movie plot) with a chat model.

``LLMStoryWriter`` runs the method's three levels of story expansion with a chat
model: one level-1 request per movie, then every substory's level-2 request at
once, then every tinystory's level-3 request at once. Each level sees only what
it needs. Its answers are held to the offline writer's rules (``story/offline.py``): the
eight actions, the fixed vocabularies, every frame in its tinystory's place, people
described by appearance and never named or likened to real people in frame
prompts, and every QA's answer containing the plot field its ``source`` names, so
the oracle and the same-shape distractors of ``qa/offline.py`` work on LLM plots too.

What cannot be used after one repair request is quarantined with its prompt: a
level-2 or level-3 failure costs only that part, a level-1 failure the movie
(``QuarantineError``). The helpers that check a model's JSON answer are shared with the
LLM QA writer (``qa/llm.py``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ..core.params import MoviePlotsParams
from ..core.plot import (
    Character,
    DialogueLine,
    Frame,
    Location,
    Movie,
    MoviePlot,
    PlotQA,
    Quarantined,
    Substory,
    Tinystory,
)
from ..core.vocabulary import (
    ACTION_VERBS,
    ACTIONS,
    CLOTHING_COLOURS,
    EXPRESSIONS,
    LEADING_PLACE,
    OBJECTS,
    OVERVIEW_QUESTION,
    PROMPT_HEAD,
    STORY_QTYPES,
    drop_lookalikes,
    location_kind,
    map_action,
    map_colour,
    map_expression,
    map_object,
)
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
from ..models.llm import CachedChat, QuarantineError, ask_json, load_prompt, make_client
from .offline import GENRE_MIX

VERSION = 1

def _key(text: str) -> str:
    """A loose name key: lower case, articles and punctuation dropped."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    return " ".join(w for w in words if w not in ("the", "a", "an"))


def unname(text: str, cast: Sequence[Character]) -> str:
    """Each character's name replaced by their appearance (frame prompts never name people)."""
    for c in sorted(cast, key=lambda c: len(c.name), reverse=True):
        text = re.sub(rf"\b{re.escape(c.name)}\b", c.appearance, text)
    return text


def _match_place(value: Any, locations: Sequence[Location], where: str) -> str:
    """The movie's location a model's scene names (articles and case do not matter)."""
    want = _key(str(value or ""))
    exact = [loc.name for loc in locations if _key(loc.name) == want]
    if exact:
        return exact[0]
    near = [loc.name for loc in locations if want and (_key(loc.name) in want or want in _key(loc.name))]
    if len(near) == 1:
        return near[0]
    raise ValueError(f"{where}: scene {value!r} is not one of the locations {[loc.name for loc in locations]}")


def _person(value: Any, cast: Sequence[Character], where: str) -> str:
    want = str(value or "").strip().lower()
    for c in cast:
        if want in (c.name.lower(), c.char_id.lower(), c.appearance.lower()):
            return c.char_id
    for c in cast:  # "Mara Quill" for Mara
        if re.search(rf"\b{re.escape(c.name.lower())}\b", want):
            return c.char_id
    raise ValueError(f"{where}: {value!r} is not one of the characters {[c.name for c in cast]}")


def _unique_title(title: str, used: set[str], suffix: str) -> str:
    out = title if title.lower() not in used else f"{title} ({suffix})"
    used.add(out.lower())
    return out


# ---------------------------------------------------------------- JSON schemas
def level1_schema(substories: int) -> dict:
    character = json_object({"name": STR, "appearance": STR, "clothing_colour": {"type": "string", "enum": list(CLOTHING_COLOURS)}})
    substory = json_object({"title": STR, "scene": STR, "content": STR, "cause": STR, "outcome": STR})
    qa = json_object({"substory": INT, "qtype": QTYPE, "question": STR, "answer": STR,
                  "answer_from": {"type": "string", "enum": ["content", "cause", "outcome", "scene"]}})
    return {"title": "level1", **json_object({
        "title": STR, "genre": {"type": "string", "enum": list(GENRE_MIX)}, "overview": STR,
        "style_description": STR, "style_keyword": STR,
        "locations": {"type": "array", "items": STR, "minItems": 12},
        "characters": {"type": "array", "items": character, "minItems": 1, "maxItems": 3},
        "substories": {"type": "array", "items": substory, "minItems": substories, "maxItems": substories},
        "qa": {"type": "array", "items": qa},
    })}


def one_of(values: Sequence[str]) -> dict:
    """A string that must be one of ``values`` (deduplicated, in order); any string when there are none."""
    values = list(dict.fromkeys(values))
    return {"type": "string", "enum": values} if values else STR


def level2_schema(tinystories: int, locations: Sequence[str] = ()) -> dict:
    """``locations``: the movie's places, the only scenes a server with structured output can answer."""
    tiny = json_object({"title": STR, "scene": one_of(locations), "content": STR})
    qa = json_object({"tinystory": INT, "qtype": QTYPE, "question": STR, "answer": STR,
                  "answer_from": {"type": "string", "enum": ["tinystory content", "tinystory scene"]}})
    return {"title": "level2", **json_object({
        "tinystories": {"type": "array", "items": tiny, "minItems": tinystories, "maxItems": tinystories},
        "qa": qa,
    })}


def level3_schema(frames: int, cast: Sequence[str] = ()) -> dict:
    """``cast``: the movie's character names, the only people a frame can show and the only speakers."""
    person = one_of(cast)
    frame = json_object({
        "characters": {"type": "array", "items": person, "minItems": 1, "maxItems": 3},
        "action": {"type": "string", "enum": list(ACTIONS)},
        "expression": {"type": "string", "enum": list(EXPRESSIONS)},
        "held_object": {"anyOf": [{"type": "string", "enum": list(OBJECTS)}, {"type": "null"}]},
        "prompt": STR,
    })
    line = json_object({"after_frame": INT, "speaker": person, "text": STR})
    qa = json_object({"qtype": QTYPE, "question": STR, "answer": STR,
                  "answer_from": {"type": "string", "enum": list(LEVEL3_SOURCES)},
                  "evidence_frames": {"type": "array", "items": INT}})
    return {"title": "level3", **json_object({
        "frames": {"type": "array", "items": frame, "minItems": frames, "maxItems": frames},
        "dialogue": {"type": "array", "items": line},
        "qa": {"type": "array", "items": qa, "minItems": 1, "maxItems": 2},
    })}


# ---------------------------------------------------------------- level answers -> dataclasses
@dataclass(frozen=True)
class Level1:
    movie: Movie
    substories: tuple[Substory, ...]
    qa: tuple[PlotQA, ...]  # evidence filled once frames exist
    bad_qa: tuple[tuple[int, Any, str], ...]  # (position, item, reason) to quarantine


def read_level1(obj: Any, theme: str, movie_id: str, substories: int) -> Level1:
    """Check a level-1 answer and turn it into the movie header and substories."""
    title = need(obj, "title", str, "level 1")
    genre_raw = str(obj.get("genre") or "").strip()
    genre = next((g for g in GENRE_MIX if g.lower() == genre_raw.lower()), genre_raw.title() or "Drama")
    overview = need(obj, "overview", str, "level 1")
    style_description = need(obj, "style_description", str, "level 1")
    keyword = re.sub(r"[^A-Za-z-]", "", need(obj, "style_keyword", str, "level 1").split()[0]).strip("-")
    if not keyword:
        raise ValueError(f"level 1: style_keyword {obj.get('style_keyword')!r} has no letters")
    keyword = keyword[0].upper() + keyword[1:]

    locations: list[Location] = []
    seen: set[str] = set()  # their keys: one look-up per place, however long the model's list
    for k, raw in enumerate(need(obj, "locations", list, "level 1")):
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError(f"level 1: location {k + 1} must be non-empty text, got {raw!r}")
        name = " ".join(raw.split())
        if _key(name) not in seen:
            seen.add(_key(name))
            locations.append(Location(name, location_kind(name)))
    if len(locations) < 12:
        raise ValueError(f"level 1: {len(locations)} distinct locations; at least 12 are needed")

    cast_raw = need(obj, "characters", list, "level 1")
    if not 1 <= len(cast_raw) <= 3:
        raise ValueError(f"level 1: {len(cast_raw)} characters; 1 to 3 are needed")
    cast: list[Character] = []
    for k, raw in enumerate(cast_raw):
        where = f"level 1 character {k + 1}"
        name = need(raw, "name", str, where)
        colour = map_colour(raw.get("clothing_colour"))
        look = drop_lookalikes(need(raw, "appearance", str, where))
        look = re.sub(rf"\b{re.escape(name)}\b,?\s*", "", look).strip(" ,") or "a person"
        look = look[0].lower() + look[1:] if look.split(" ", 1)[0] in ("A", "An", "The") else look
        appearance = look if look.endswith(f" in {colour}") else f"{look} in {colour}"
        if any(c.name.lower() == name.lower() for c in cast):
            raise ValueError(f"{where}: the name {name!r} is used twice")
        if any(c.appearance.lower() == appearance.lower() for c in cast):
            raise ValueError(f"{where}: the appearance {appearance!r} is the same as another character's")
        cast.append(Character(f"c{k}", name, appearance, colour))

    subs_raw = need(obj, "substories", list, "level 1")
    if len(subs_raw) != substories:
        raise ValueError(f"level 1: {len(subs_raw)} substories; exactly {substories} are needed")
    subs: list[Substory] = []
    titles: set[str] = {title.lower()}
    for i, raw in enumerate(subs_raw):
        where = f"level 1 substory {i + 1}"
        subs.append(Substory(
            movie_id, i, _unique_title(need(raw, "title", str, where), titles, str(i + 1)),
            _match_place(raw.get("scene"), locations, where), need(raw, "content", str, where),
            need(raw, "cause", str, where), need(raw, "outcome", str, where),
        ))
    movie = Movie(movie_id, theme, title, genre, overview, style_description, keyword, tuple(locations), tuple(cast))

    good, bad = [], []
    items = obj.get("qa") if isinstance(obj.get("qa"), list) else []
    for k, item in enumerate(items):
        where = f"level 1 qa {k + 1}"
        try:
            i = need(item, "substory", int, where) - 1
            if not 0 <= i < substories:
                raise ValueError(f"{where}: substory {i + 1} is not from 1 to {substories}")
            field = answer_field(item, ("content", "cause", "outcome", "scene"), where)
            answer = need(item, "answer", str, where)
            must_contain(answer, getattr(subs[i], field), where)
            good.append(PlotQA(movie_id, "level1", read_qtype(item, where), need(item, "question", str, where),
                               answer, (), f"substory:{i}:{field}"))
        except ValueError as exc:
            bad.append((k, item, str(exc)))
    return Level1(movie, tuple(subs), tuple(good), tuple(bad))


@dataclass(frozen=True)
class Level2:
    tinystories: tuple[Tinystory, ...]
    qa: tuple[PlotQA, ...]
    bad_qa: tuple[tuple[int, Any, str], ...]


def read_level2(obj: Any, movie: Movie, sub: Substory, tinystories: int) -> Level2:
    i = sub.substory_index
    items = need(obj, "tinystories", list, "level 2")
    if len(items) != tinystories:
        raise ValueError(f"level 2: {len(items)} tinystories; exactly {tinystories} are needed")
    tiny = []
    for j, raw in enumerate(items):
        where = f"level 2 tinystory {j + 1}"
        tiny.append(Tinystory(movie.movie_id, i, j, need(raw, "title", str, where),
                              _match_place(raw.get("scene"), movie.locations, where), need(raw, "content", str, where)))
    qa_items = obj.get("qa")
    qa_items = qa_items if isinstance(qa_items, list) else [qa_items] if qa_items is not None else []
    good, bad = [], []
    for k, item in enumerate(qa_items):
        where = f"level 2 qa {k + 1}"
        try:
            j = need(item, "tinystory", int, where) - 1
            if not 0 <= j < tinystories:
                raise ValueError(f"{where}: tinystory {j + 1} is not from 1 to {tinystories}")
            field = answer_field(item, ("tinystory content", "tinystory scene"), where).split(" ")[1]
            answer = need(item, "answer", str, where)
            must_contain(answer, getattr(tiny[j], field), where)
            good.append(PlotQA(movie.movie_id, "level2", read_qtype(item, where), need(item, "question", str, where),
                               answer, (), f"tinystory:{i}.{j}:{field}"))
        except ValueError as exc:
            bad.append((k, item, str(exc)))
    return Level2(tuple(tiny), tuple(good), tuple(bad))


@dataclass(frozen=True)
class Level3:
    """Frames, lines and QA of one tinystory, numbered from 0 within it (shifted on assembly)."""

    frames: tuple[Frame, ...]
    dialogue: tuple[DialogueLine, ...]
    qa: tuple[PlotQA, ...]  # a frame source is "frame:<local index>:<field>"
    bad_qa: tuple[tuple[int, Any, str], ...]


def frame_prompt(raw: Any, scene: str, cast: Sequence[Character], present: Sequence[str], action: str,
                 expression: str, obj: str | None) -> str:
    """The model's frame prompt, set in the tinystory's place, names and look-alikes removed."""
    text = PROMPT_HEAD.sub("", " ".join(str(raw or "").split()))
    text = unname(drop_lookalikes(text), cast)
    if not text:
        who = " and ".join(c.appearance for c in cast if c.char_id in present)
        thing = f" {obj}" if action == "hold" and obj else ""
        return f"In {scene}, {who} {'are' if len(present) > 1 else 'is'} {ACTION_VERBS[action]}{thing}, with a {expression} expression."
    body = LEADING_PLACE.sub("", text, count=1)
    return f"In {scene}, {body[:1].lower() + body[1:] if body[:2] in ('A ', 'An') else body}"


def read_level3(obj: Any, movie: Movie, tiny: Tinystory, frames: int) -> Level3:
    """Check a level-3 answer against the rules: vocabularies, place, people, near-duplicates."""
    cast = movie.characters
    mid = movie.movie_id
    items = need(obj, "frames", list, "level 3")
    if len(items) != frames:
        raise ValueError(f"level 3: {len(items)} frames; exactly {frames} are needed")
    out: list[Frame] = []
    for k, raw in enumerate(items):
        where = f"level 3 frame {k + 1}"
        people = need(raw, "characters", (list, str), where)
        ids = list(dict.fromkeys(_person(p, cast, where) for p in (people if isinstance(people, list) else [people])))
        if not ids:
            raise ValueError(f"{where}: nobody is in the frame")
        action = map_action(raw.get("action"))
        held = map_object(raw.get("held_object"))
        if action == "hold" and held is None:
            raise ValueError(f"{where}: action 'hold' needs a held_object from {list(OBJECTS)}, got {raw.get('held_object')!r}")
        if action == "hug" and len(ids) < 2:
            raise ValueError(f"{where}: action 'hug' needs two characters, got {ids}")
        expression = map_expression(raw.get("expression"))
        kind = next(loc.kind for loc in movie.locations if loc.name == tiny.scene)
        prompt = frame_prompt(raw.get("prompt"), tiny.scene, cast, ids, action, expression, held)
        out.append(Frame(mid, k, tiny.substory_index, tiny.tinystory_index, tiny.scene, kind, tuple(ids), action,
                         expression, held, prompt))

    lines: list[DialogueLine] = []
    raw_lines = obj.get("dialogue") if isinstance(obj.get("dialogue"), list) else []
    for n, raw in enumerate(raw_lines):
        where = f"level 3 dialogue line {n + 1}"
        after = need(raw, "after_frame", int, where)
        if not 1 <= after <= frames:
            raise ValueError(f"{where}: after_frame {after} is not from 1 to {frames}")
        speaker = _person(raw.get("speaker"), cast, where)
        if speaker not in out[after - 1].characters:
            raise ValueError(f"{where}: the speaker {raw.get('speaker')!r} is not in frame {after}")
        lines.append(DialogueLine(mid, n, after - 1, speaker, need(raw, "text", str, where)))
    lines = [replace(line, line_index=n) for n, line in enumerate(sorted(lines, key=lambda x: x.after_frame))]

    sig = [(f.characters, f.action, f.expression, f.held_object) for f in out]
    spoken = {line.after_frame for line in lines}
    for k in range(1, len(sig)):
        if sig[k] == sig[k - 1]:
            if k >= 2 and sig[k - 2] == sig[k]:
                raise ValueError(f"level 3: frames {k - 1} to {k + 1} show the same moment; at most two may")
            if k - 1 not in spoken:
                raise ValueError(f"level 3: frames {k} and {k + 1} show the same moment with no dialogue between them")

    good, bad = [], []
    qa_items = obj.get("qa") if isinstance(obj.get("qa"), list) else []
    tid = f"{tiny.substory_index}.{tiny.tinystory_index}"
    for k, item in enumerate(qa_items):
        where = f"level 3 qa {k + 1}"
        try:
            field = answer_field(item, LEVEL3_SOURCES, where)
            evidence = frame_numbers(item.get("evidence_frames") or [], 1, frames, where)
            answer = need(item, "answer", str, where)
            if field in FRAME_FIELDS:
                if not evidence:
                    raise ValueError(f"{where}: {field!r} needs evidence_frames")
                name = field.split(" ")[1]
                value = getattr(out[evidence[0] - 1], name)
                if value is None:
                    raise ValueError(f"{where}: frame {evidence[0]} holds no object")
                source = f"frame:{evidence[0] - 1}:{name}"
            else:
                name = field.split(" ")[1]
                value = getattr(tiny, name)
                source = f"tinystory:{tid}:{name}"
            must_contain(answer, value, where)
            good.append(PlotQA(mid, "level3", read_qtype(item, where), need(item, "question", str, where), answer,
                               tuple(e - 1 for e in evidence) or tuple(range(frames)), source))
        except ValueError as exc:
            bad.append((k, item, str(exc)))
    return Level3(tuple(out), tuple(lines), tuple(good), tuple(bad))


# ---------------------------------------------------------------- writers
STAGE = "movie_plots"


class LLMStoryWriter:
    """Stage 1 with a chat model: the method's three levels, held to the offline writer's rules."""

    name = "llm"

    def __init__(self, params: MoviePlotsParams, cache_dir: Path):
        self.params = params
        self.chat = CachedChat(make_client(params.llm, f"{STAGE}.llm"), Path(cache_dir))
        self.prompts = {name: load_prompt(name) for name in ("level1", "level2", "level3", "repair")}

    def identity(self) -> str:
        versions = ",".join(p.tag for p in self.prompts.values())
        return f"llm-story/{VERSION}|{self.chat.identity()}|{json.dumps(self.chat.sampling(), sort_keys=True)}|{versions}"

    def usage(self) -> dict[str, int]:
        return self.chat.usage()

    def _ask(self, level: str, requests: list[list[dict]], validate, steps: list[str], movie_id: str, schema: dict, seed: int):
        return ask_json(self.chat, requests, validate, steps, movie_id, STAGE, schema, self.prompts[level].tag, seed)

    def write(self, theme: str, movie_id: str, seed: int, substories: int, tinystories: int, frames: int) -> MoviePlot:
        """A whole movie; raises QuarantineError when level 1 (or every frame) cannot be written."""
        if not isinstance(theme, str) or not theme.strip():
            raise ValueError(f"theme must be non-blank text, got {theme!r}")
        for label, value in (("substories", substories), ("tinystories", tinystories), ("frames", frames)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        rseed = self.params.llm.seed + seed
        quarantine: list[Quarantined] = []

        # Level 1: theme -> movie header, substories, one QA each.
        msg1 = user_message(self.prompts["level1"].render(
            theme=theme.strip(), genres=", ".join(GENRE_MIX), colours=", ".join(CLOTHING_COLOURS), substories=substories))
        [(l1, failed)] = self._ask("level1", [msg1], lambda o: read_level1(o, theme, movie_id, substories),
                                   ["level1"], movie_id, level1_schema(substories), rseed)
        if l1 is None:
            raise QuarantineError(f"{movie_id}: level 1 could not be written: {failed.reason}", [failed])
        movie = l1.movie
        quarantine += bad_qa_records(l1.bad_qa, movie_id, STAGE, "level1", msg1)
        locations = "\n".join(f"- {loc.name}" for loc in movie.locations)

        # Level 2: one request per substory, all at once.
        msg2 = [user_message(self.prompts["level2"].render(
            title=movie.title, genre=movie.genre, overview=movie.overview, characters=cast_lines(movie.characters),
            locations=locations, sub_title=s.title, sub_scene=s.scene, sub_content=s.content, sub_cause=s.cause,
            sub_outcome=s.outcome, tinystories=tinystories, qtype=STORY_QTYPES[s.substory_index % len(STORY_QTYPES)],
        )) for s in l1.substories]
        res2 = self._ask("level2", msg2, [lambda o, s=s: read_level2(o, movie, s, tinystories) for s in l1.substories],
                         [f"level2:{s.substory_index}" for s in l1.substories], movie_id,
                         level2_schema(tinystories, [loc.name for loc in movie.locations]), rseed)
        level2: dict[int, Level2] = {}
        for s, msg, (l2, failed) in zip(l1.substories, msg2, res2):
            if l2 is None:
                quarantine.append(failed)
            else:
                level2[s.substory_index] = l2
                quarantine += bad_qa_records(l2.bad_qa, movie_id, STAGE, f"level2:{s.substory_index}", msg)

        # Level 3: one request per tinystory, all at once. Titles are unique over the movie,
        # so a question naming one is unambiguous.
        titles = {movie.title.lower(), *(s.title.lower() for s in l1.substories)}
        tinies = [replace(t, title=_unique_title(t.title, titles, f"{t.substory_index + 1}.{t.tinystory_index + 1}"))
                  for i in sorted(level2) for t in level2[i].tinystories]
        msg3 = [user_message(self.prompts["level3"].render(
            overview=movie.overview, characters=cast_lines(movie.characters), tiny_title=t.title,
            tiny_scene=t.scene, tiny_content=t.content, frames=frames, actions=", ".join(ACTIONS),
            expressions=", ".join(EXPRESSIONS), objects=", ".join(OBJECTS),
        )) for t in tinies]
        res3 = self._ask("level3", msg3, [lambda o, t=t: read_level3(o, movie, t, frames) for t in tinies],
                         [f"level3:{t.substory_index}.{t.tinystory_index}" for t in tinies], movie_id,
                         level3_schema(frames, [c.name for c in movie.characters]), rseed)

        # Assembly: frames and lines numbered over the movie, skipping what failed.
        frame_list: list[Frame] = []
        lines: list[DialogueLine] = []
        qa3: list[PlotQA] = []
        by_sub: dict[int, list[int]] = {}
        for t, msg, (l3, failed) in zip(tinies, msg3, res3):
            step = f"level3:{t.substory_index}.{t.tinystory_index}"
            if l3 is None:
                quarantine.append(failed)
                continue
            base, first_line = len(frame_list), len(lines)
            frame_list += [replace(f, frame_index=base + f.frame_index) for f in l3.frames]
            lines += [replace(x, line_index=first_line + x.line_index, after_frame=base + x.after_frame) for x in l3.dialogue]
            for qa in l3.qa:
                table, index, field = qa.source.split(":")
                source = f"frame:{base + int(index)}:{field}" if table == "frame" else qa.source
                qa3.append(replace(qa, evidence_frames=tuple(base + e for e in qa.evidence_frames), source=source))
            quarantine += bad_qa_records(l3.bad_qa, movie_id, STAGE, step, msg)
            by_sub.setdefault(t.substory_index, []).extend(range(base, len(frame_list)))
        if not frame_list:
            raise QuarantineError(f"{movie_id}: no frames could be written", quarantine)

        # Level QAs show the frames of their substory; one with no frames has no evidence to show.
        level_qas: list[PlotQA] = []
        for qa, step in [(q, "level1") for q in l1.qa] + [(q, f"level2:{i}") for i in sorted(level2) for q in level2[i].qa]:
            sub = int(qa.source.split(":")[1].split(".")[0])
            evidence = tuple(by_sub.get(sub, ()))
            if evidence:
                level_qas.append(replace(qa, evidence_frames=evidence))
            else:
                quarantine.append(Quarantined(movie_id, STAGE, f"{step}:qa", json.dumps([]), json.dumps(
                    {"question": qa.question, "answer": qa.answer, "source": qa.source}),
                    f"substory {sub + 1} has no frames (its level 2 or 3 failed), so the QA has no evidence"))
        overview = PlotQA(movie_id, "movie", "overview", OVERVIEW_QUESTION, movie.overview,
                          tuple(range(len(frame_list))), "movie::overview")
        return MoviePlot(movie=movie, substories=l1.substories, tinystories=tuple(tinies), frames=tuple(frame_list),
                         dialogue=tuple(lines), qa=(overview, *level_qas, *qa3), quarantine=tuple(quarantine))
