"""The DreamFrame authors' story files: import them as movies, export ours to their format.

Their file holds ``overview``, ``character`` (name -> appearance), ``img_diag`` (an
ordered list of ``["frame", prompt]`` and ``["dialogue", line]``) and ``QA`` (a list
of ``{"Question", "Answer"}``). Nothing in it links a QA to its frames, gives a
line its speaker, or structures a frame; the import recovers what the text allows:

- frames: the place, who is present (by appearance), one of the eight actions, the
  expression and a held object, read off the prompt's words;
- structure: l = m = n when the frame count is a cube (the authors use 11/11/11),
  so substories, tinystories and level QAs line up with their frames; otherwise one
  substory whose tinystories follow the changes of place;
- appearance: "a man looks like <actor> in brown" becomes "a man in brown" — the
  project describes people, it does not name look-alikes of real ones;
- speakers: a line is given to the first person present in the frame before it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from ..core.plot import (
    Character,
    DialogueLine,
    Frame,
    Location,
    Movie,
    MoviePlot,
    PlotQA,
    Substory,
    Tinystory,
)
from ..core.vocabulary import (
    ACTIONS,
    LEADING_PLACE,
    OVERVIEW_QUESTION,
    PROMPT_HEAD,
    drop_lookalikes,
    find_action,
    find_colour,
    find_expression,
    find_object,
    location_kind,
)


class StoryFormatError(ValueError):
    """The file is not a story in the authors' format; the message names the file and field."""


def _place(text: str) -> str:
    match = LEADING_PLACE.match(text)
    place = match.group(1) if match else "an unnamed place"
    place = place.strip().replace("\u2019", "'").lower()
    return place if place.startswith(("the ", "a ", "an ")) else f"the {place}"


def _frame(movie_id: str, index: int, prompt: str, cast: list[tuple[str, str, Character]]) -> Frame:
    body = PROMPT_HEAD.sub("", prompt).strip()
    low = body.lower()
    present = sorted((low.find(raw.lower()), c) for raw, _, c in cast if raw.lower() in low)
    chars = [c for _, c in present]
    if not chars:  # nobody of the cast is named: the frame shows the lead
        chars = [cast[0][2]]
    text, scan = body, low
    for raw, new, _ in cast:
        text = re.sub(re.escape(raw), new, text, flags=re.I)
        scan = scan.replace(raw.lower(), " ")  # "looks like ..." is not an action
    scan = LEADING_PLACE.sub("", scan, count=1)  # nor is the place ("In the study, ...")
    obj = find_object(scan)
    allowed = [a for a in ACTIONS if not (a == "hug" and len(chars) < 2) and not (a == "hold" and obj is None)]
    action = find_action(scan, allowed) or "stand"
    expression = find_expression(scan) or "calm"
    place = _place(body)
    return Frame(
        movie_id=movie_id, frame_index=index, substory_index=0, tinystory_index=0, location=place,
        location_kind=location_kind(place), characters=tuple(c.char_id for c in chars), action=action,
        expression=expression, held_object=obj, prompt=text,
    )


def _split(n: int) -> tuple[int, int, int] | None:
    k = round(n ** (1 / 3))
    return (k, k, k) if k > 1 and k**3 == n else None


def import_story(data: dict, movie_id: str, theme: str = "", source: str = "story") -> MoviePlot:
    """One authors' story dict as a MoviePlot; ``source`` names the file in errors."""
    for key, kind in (("overview", str), ("character", dict), ("img_diag", list), ("QA", list)):
        if not isinstance(data.get(key), kind):
            raise StoryFormatError(f"{source}: field {key!r} missing or not a {kind.__name__}")
    if not data["character"]:
        raise StoryFormatError(f"{source}: field 'character' is empty")
    cast = []
    for i, (name, raw) in enumerate(data["character"].items()):
        appearance = drop_lookalikes(str(raw).strip())  # 'a man looks like <someone> in brown' -> 'a man in brown'
        colour = find_colour(appearance) or "grey"
        cast.append((str(raw), appearance, Character(f"c{i}", str(name), appearance, colour)))
    keyword = "Cinematic"
    frames: list[Frame] = []
    lines: list[tuple[int, str]] = []
    for n, entry in enumerate(data["img_diag"]):
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in ("frame", "dialogue")):
            raise StoryFormatError(f"{source}: img_diag[{n}] is not ['frame'|'dialogue', text]")
        if entry[0] == "frame":
            head = PROMPT_HEAD.match(entry[1])
            keyword = head.group(1).capitalize() if head and not frames else keyword
            frames.append(_frame(movie_id, len(frames), entry[1], cast))
        elif frames:
            lines.append((len(frames) - 1, str(entry[1]).strip()))
    if not frames:
        raise StoryFormatError(f"{source}: img_diag has no frames")

    shape = _split(len(frames))
    if shape:
        l, m, n = shape
        groups = [(i // (m * n), (i // n) % m) for i in range(len(frames))]
    else:  # one substory; a new tinystory at every change of place
        groups, t = [], 0
        for i, f in enumerate(frames):
            t += i > 0 and f.location != frames[i - 1].location
            groups.append((0, t))
    frames = [Frame(**{**f.__dict__, "substory_index": s, "tinystory_index": t}) for f, (s, t) in zip(frames, groups)]

    places = list(dict.fromkeys(f.location for f in frames))
    tiny_keys = list(dict.fromkeys(groups))
    tinystories = []
    for s, t in tiny_keys:
        members = [f for f in frames if (f.substory_index, f.tinystory_index) == (s, t)]
        scene = Counter(f.location for f in members).most_common(1)[0][0]
        tinystories.append(Tinystory(movie_id, s, t, f"Part {s + 1}.{t + 1}", scene,
                                     f"Keyframes {members[0].frame_index + 1}-{members[-1].frame_index + 1} at {scene}."))
    substories = []
    for s in sorted({s for s, _ in tiny_keys}):
        members = [f for f in frames if f.substory_index == s]
        scene = Counter(f.location for f in members).most_common(1)[0][0]
        substories.append(Substory(movie_id, s, f"Part {s + 1}", scene,
                                   f"Keyframes {members[0].frame_index + 1}-{members[-1].frame_index + 1}, mostly at {scene}.",
                                   cause="not given in the imported story", outcome="not given in the imported story"))

    dialogue = tuple(
        DialogueLine(movie_id, i, after, frames[after].characters[0], text) for i, (after, text) in enumerate(lines)
    )
    qa = _import_qa(data["QA"], movie_id, frames, len(substories), len(tinystories), source)
    overview = " ".join(str(data["overview"]).split())
    title = re.match(r"^'([^']+)'", overview)
    movie = Movie(
        movie_id=movie_id, theme=theme or (title.group(1) if title else overview[:80]),
        title=title.group(1) if title else f"Imported story {movie_id}", genre="Drama", overview=overview,
        style_description=f"{keyword.lower()}, cinematic", style_keyword=keyword,
        locations=tuple(Location(p, location_kind(p)) for p in places) + _padding(places),
        characters=tuple(c for _, _, c in cast),
    )
    return MoviePlot(movie, tuple(substories), tuple(tinystories), tuple(frames), dialogue, qa)


def _padding(places: list[str]) -> tuple[Location, ...]:
    """Movies list at least 12 places; an imported one may use fewer."""
    extra = [f"the unnamed place {i + 1}" for i in range(max(0, 12 - len(places)))]
    return tuple(Location(p, "room") for p in extra)


def _import_qa(items: list, movie_id: str, frames: list[Frame], l: int, tinies: int, source: str) -> tuple[PlotQA, ...]:
    """Their QA list; with the authors' layout (1 + l + l + l*m) each QA gets its part's frames."""
    every = tuple(f.frame_index for f in frames)
    by_sub = [tuple(f.frame_index for f in frames if f.substory_index == s) for s in range(l)]
    tiny_keys = list(dict.fromkeys((f.substory_index, f.tinystory_index) for f in frames))
    by_tiny = [tuple(f.frame_index for f in frames if (f.substory_index, f.tinystory_index) == k) for k in tiny_keys]
    layout = len(items) == 1 + 2 * l + tinies
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, dict) and isinstance(item.get("Question"), str) and isinstance(item.get("Answer"), str)):
            raise StoryFormatError(f"{source}: QA[{i}] needs string 'Question' and 'Answer'")
        q, a = " ".join(item["Question"].split()), " ".join(item["Answer"].split())
        if i == 0 and q == OVERVIEW_QUESTION:
            out.append(PlotQA(movie_id, "movie", "overview", q, a, every, "movie::overview"))
            continue
        word = q.split(" ", 1)[0].lower()
        qtype = word if word in ("what", "why", "how", "where") else "what"
        level, evidence = "level3", every
        if layout and 1 <= i <= l:
            level, evidence = "level1", by_sub[i - 1]
        elif layout and l < i <= 2 * l:
            level, evidence = "level2", by_sub[i - 1 - l]
        elif layout:
            evidence = by_tiny[i - 1 - 2 * l]
        out.append(PlotQA(movie_id, level, qtype, q, a, evidence, f"qa:{len(out)}:answer"))
    return tuple(out)


def read_story(path: Path, movie_id: str) -> MoviePlot:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoryFormatError(f"{path}: not a readable JSON story ({exc})") from None
    if not isinstance(data, dict):
        raise StoryFormatError(f"{path}: expected a JSON object with overview, character, img_diag, QA")
    return import_story(data, movie_id, source=str(path))


def export_story(plot: MoviePlot) -> dict:
    """A movie in the authors' story format (frame prompts carry the style keyword)."""
    after: dict[int, list[str]] = {}
    for line in plot.dialogue:
        after.setdefault(line.after_frame, []).append(line.text)
    diag: list[list[str]] = []
    for f in plot.frames:
        diag.append(["frame", f"generate an image in {plot.movie.style_keyword} style: {f.prompt}"])
        diag += [["dialogue", text] for text in after.get(f.frame_index, [])]
    return {
        "overview": plot.movie.overview,
        "character": {c.name: c.appearance for c in plot.movie.characters},
        "img_diag": diag,
        "QA": [{"Question": q.question, "Answer": q.answer} for q in plot.qa],
    }
