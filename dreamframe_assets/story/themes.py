"""One-line themes at scale: composed offline, or written by a chat model.

Offline, each theme draws one phrase of each slot. Two themes never share three of the
four (role, goal, place, time), so no two tell nearly the same story; the roles and places
are words the offline story writer reads (``story.offline``), so each theme brings its
own protagonist and places. Deterministic per (count, seed): the first themes of a
larger count are the themes of a smaller one.

With a chat model (``llm_themes``), themes are asked for in batches and kept only when a
themes file would read them back as they are, they make a new movie id and they are no
near-duplicate of a kept theme (the QA gates' sentence embeddings and threshold): a model
repeats itself across requests, and near-identical themes make near-identical movies.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..core.ids import item_seed, movie_id_for
from ..core.params import THEME_COMMENT, theme_problem
from ..models.answers import STR, json_object, user_message
from ..models.llm import CachedChat, ask_json, load_prompt

ADJECTIVES = (
    "young", "retired", "stubborn", "shy", "grumpy", "cheerful", "clumsy", "brave", "lonely", "curious",
    "ambitious", "forgetful", "restless", "gentle", "proud", "nervous", "reckless", "patient", "secretive",
    "hopeful", "weary", "determined", "elderly", "newly hired", "homesick", "famous", "penniless", "exiled",
    "sleepless", "soft-spoken",
)
ROLES = (
    "baker", "inventor", "detective", "pianist", "guide", "librarian", "climber", "musician", "painter",
    "scientist", "teacher", "doctor", "nurse", "farmer", "fisherman", "sailor", "soldier", "knight", "student",
    "chef", "writer", "artist", "pilot", "captain", "thief", "witch", "wizard", "hunter", "gardener",
    "photographer", "journalist", "explorer", "traveller", "princess", "prince", "mechanic", "dancer", "keeper",
)
GOALS = (
    "finds a message in a bottle", "must deliver a sealed letter", "searches for a missing sister",
    "repairs a broken clock tower", "guards a stolen painting", "trains a stubborn horse", "races to stop a flood",
    "hides a runaway prince", "loses a precious violin", "opens a tiny bakery", "solves a theft",
    "builds a flying machine", "follows a secret map", "protects a wounded wolf", "prepares for one last concert",
    "rescues trapped climbers", "uncovers a forged will", "teaches a robot to dance", "plants a forbidden garden",
    "returns a cursed ring", "escapes a collapsing mine", "wins a cooking contest", "reunites two old rivals",
    "catches a phantom thief", "deciphers a coded diary", "carries medicine through a blizzard",
    "defends a village from bandits", "finds a talking cat", "restores a silent radio", "chases a runaway balloon",
    "smuggles books past the guards", "breaks a sleeping curse", "maps an unknown island", "saves a failing farm",
    "tracks a giant footprint", "mends a torn wedding dress", "answers a distress signal", "keeps a dangerous promise",
    "searches for a lost dog", "learns to fly a kite", "swaps places with a twin", "wakes a stone dragon",
    "hunts for a buried treasure", "forgives an old enemy", "paints a portrait of a ghost", "brings back the lost light",
)
PLACES = (
    "in a fishing village", "on a night train", "at a desert oasis", "in an enchanted forest", "in a haunted manor",
    "at a busy market", "in a snowy mountain pass", "on a pirate ship", "in a crumbling castle", "in a flooded city",
    "at an old lighthouse", "in a quiet library", "at a village festival", "in a hidden cave", "on a remote island",
    "in a royal palace", "at a crowded harbor", "in a bamboo forest", "at a mountain monastery", "in a neon city",
    "at a space station", "in an underground tunnel", "at a travelling circus", "in a sunflower field",
    "in a frozen lake town", "at a jungle temple", "in a rainy seaside town", "at a roadside diner",
    "in a clockmaker's shop", "at a school for magic", "in a walled garden", "on a river barge", "at a ski resort",
    "in an abandoned factory", "at a wedding feast", "in a royal kitchen", "at a border checkpoint", "in a volcano observatory",
)
TIMES = (
    "during a winter storm", "before the harvest festival", "on the night of an eclipse", "during a heatwave",
    "in the last week of summer", "on the eve of a war", "during a power cut", "before the spring thaw",
    "on a foggy morning", "during the monsoon", "on the longest night of the year", "after a great earthquake",
    "during a royal wedding", "before dawn", "on the first day of school", "during a sandstorm", "at the end of an empire",
    "during a blackout", "in the year of the comet", "on a moonless night", "during the autumn fair",
    "before the river freezes", "on election day", "during a plague of crows",
)
SLOTS = (ROLES, GOALS, PLACES, TIMES)


STALLED = 20_000  # draws in a row that clash with the themes made: the phrases are used up


def most_themes() -> int:
    """An upper bound: each theme takes one combination of each three slots' phrases."""
    sizes = sorted(len(slot) for slot in SLOTS)
    return sizes[0] * sizes[1] * sizes[2]


def offline_themes(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct themes; no two share three of their four slot phrases (ValueError
    when ``count`` is more than the phrases allow)."""
    if count < 0:
        raise ValueError(f"count: {count} is below 0")
    if count > most_themes():
        raise ValueError(f"count: {count} themes do not fit the phrases (at most {most_themes():,})")
    rng = random.Random(f"themes:{seed}")
    combos = [range(len(slot)) for slot in SLOTS]
    taken: set[tuple] = set()  # (which slots, their phrases) for every 3 slots of every theme
    themes: list[str] = []
    misses = 0
    while len(themes) < count:
        pick = tuple(rng.choice(c) for c in combos)
        triples = [(which, tuple(pick[i] for i in which)) for which in itertools.combinations(range(4), 3)]
        if any(t in taken for t in triples):
            misses += 1
            if misses > STALLED:
                raise ValueError(f"count: {count} themes do not fit the phrases (made {len(themes)})")
            continue
        misses = 0
        taken.update(triples)
        adjective = rng.choice(ADJECTIVES)
        role, goal, place, time = (slot[i] for slot, i in zip(SLOTS, pick))
        article = "An" if adjective[0] in "aeiou" else "A"
        themes.append(f"{article} {adjective} {role} {goal} {place} {time}")
    return themes


# ---------------------------------------------------------------- with a chat model
MAX_ROUNDS = 10  # rounds of requests at most: a model this far from the count will not reach it
HINTS = 3  # slot phrases offered to each request, so no two requests are alike


@dataclass(frozen=True)
class LLMThemes:
    """The themes kept, in the order the model wrote them, and what became of the rest."""

    themes: list[str]
    requests: int  # batches asked for
    asked: int  # themes asked for, over all batches
    written: int  # themes the answers held
    invalid: int  # not one line a themes file reads back as it is
    repeated: int  # a movie id (or text, case aside) already kept
    near_duplicates: int  # cosine at or above the threshold with a kept theme
    unreadable: int  # answers that were no JSON list of themes, even after a repair request


def themes_schema(batch: int) -> dict:
    return {"title": "themes", **json_object({"themes": {"type": "array", "items": STR, "maxItems": batch}})}


def themes_of_answer(obj: Any) -> list:
    """The list of a ``{"themes": [...]}`` answer (a bare list is taken too); its items are checked one by one later,
    so one bad theme costs that theme, not the batch."""
    items = obj.get("themes") if isinstance(obj, dict) else obj
    if not isinstance(items, list) or not items:
        raise ValueError('expected {"themes": [...]} with at least one theme')
    return items


def _hints(batch_seed: int) -> str:
    """A few offline slot phrases to start from: requests that differ get answers that differ."""
    rng = random.Random(batch_seed)
    return ", ".join(rng.choice(slot) for slot in rng.sample(SLOTS, HINTS))


def llm_themes(chat: CachedChat, count: int, seed: int, embedder: Any, threshold: float, batch: int = 50,
               existing: Sequence[str] = ()) -> LLMThemes:
    """``count`` themes written by ``chat``'s model, ``batch`` per request, in rounds until enough are kept.

    Each request has its own number and seed (from ``seed``), which pick the slot phrases
    it offers as hints, so every request differs and is cached on its own: a second run
    with the same answers in the cache asks nothing and returns the same themes.
    ``existing`` themes count as kept for the checks but are not returned. ``embedder``
    has ``encode(list[str])`` giving unit rows. Raises ValueError, saying how many were
    made and why, when a round keeps no new theme or MAX_ROUNDS rounds do not reach ``count``.
    """
    if count < 0:
        raise ValueError(f"count: {count} is below 0")
    if batch < 1:
        raise ValueError(f"batch: {batch} is below 1")
    prompt = load_prompt("themes")
    schema = themes_schema(batch)
    kept: list[str] = []
    ids: set[str] = set()
    texts: set[str] = set()  # lower case: a themes file reads two themes that differ in case alone as one
    bank = np.zeros((0, 0), dtype=np.float32)  # unit rows of the existing and kept themes, the first ``size`` used
    size = 0
    stats = dict(requests=0, asked=0, written=0, invalid=0, repeated=0, near_duplicates=0, unreadable=0)

    def take(theme: str, vector: np.ndarray) -> None:
        nonlocal bank, size
        if size == len(bank):  # grown by doubling: thousands of themes, each checked against all kept
            bank = np.concatenate([bank[:size].reshape(size, vector.size),
                                   np.zeros((max(64, size), vector.size), dtype=np.float32)])
        bank[size] = vector
        size += 1
        ids.add(movie_id_for(theme))
        texts.add(theme.lower())

    old = [" ".join(t.split()) for t in existing]
    for theme, vector in zip(old, embedder.encode(old) if old else []):
        take(theme, vector)

    rounds = 0
    while len(kept) < count:
        if rounds == MAX_ROUNDS:
            raise ValueError(_shortfall(kept, count, rounds, stats, f"{MAX_ROUNDS} rounds did not make enough"))
        rounds += 1
        first = stats["requests"]  # request numbers run on over rounds: each request is new
        numbers = range(first, first + math.ceil((count - len(kept)) / batch))
        requests = [user_message(prompt.render(count=batch, number=n + 1, hints=_hints(item_seed(seed, "themes", n))))
                    for n in numbers]
        stats["requests"] += len(requests)
        stats["asked"] += batch * len(requests)
        answers = ask_json(chat, requests, themes_of_answer, [f"themes:{n + 1}" for n in numbers], "themes", "themes",
                           schema, prompt.tag, seed)
        candidates: list[str] = []
        for items, failed in answers:
            if failed is not None:
                stats["unreadable"] += 1
                continue
            stats["written"] += len(items)
            for item in items:
                theme = " ".join(item.split()) if isinstance(item, str) else ""
                if not theme or theme_problem(theme) or THEME_COMMENT.sub("", theme).strip() != theme:
                    stats["invalid"] += 1  # a theme a themes file would cut (at "#") or leave out
                else:
                    candidates.append(theme)
        before = len(kept)
        for theme, vector in zip(candidates, embedder.encode(candidates) if candidates else []):
            if len(kept) == count:
                break
            if movie_id_for(theme) in ids or theme.lower() in texts:
                stats["repeated"] += 1
            elif size and float(np.max(bank[:size] @ vector)) >= threshold:
                stats["near_duplicates"] += 1
            else:
                take(theme, vector)
                kept.append(theme)
        if len(kept) == before:
            raise ValueError(_shortfall(kept, count, rounds, stats, f"round {rounds} kept no new theme"))
    return LLMThemes(kept, **stats)


def _shortfall(kept: list[str], count: int, rounds: int, stats: dict, why: str) -> str:
    return (f"llm: the model wrote {len(kept)} usable themes of {count} asked for in {rounds} round(s) "
            f"({stats['requests']} requests; {stats['written']} themes written, the rest were near-duplicates, "
            f"repeated or invalid: {stats['near_duplicates']} near-duplicates, {stats['repeated']} repeated, "
            f"{stats['invalid']} invalid; {stats['unreadable']} answers unreadable); {why}. "
            f"ask for fewer, try another seed or raise the model's temperature")
