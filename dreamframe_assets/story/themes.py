"""One-line themes at scale, offline: a protagonist, a goal, a place and a time, composed.

Each theme draws one phrase of each slot. Two themes never share three of the four
(role, goal, place, time), so no two tell nearly the same story; the roles and places
are words the offline story writer reads (``story.offline``), so each theme brings its
own protagonist and places. Deterministic per (count, seed): the first themes of a
larger count are the themes of a smaller one.
"""

from __future__ import annotations

import itertools
import random

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
