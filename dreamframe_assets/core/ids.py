"""Stable names and seeds: a movie's id from its theme, an item's seed from its parts.

Both are content hashes, the same in every process and on every machine, so a
movie keeps its id and its noise whatever else is in the dataset. A movie id is
also a file name in every stage folder, so it is short and made only of ``a-z``,
``0-9`` and ``-`` whatever the theme (any script, emoji, a path, a shell line).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .cache import digest

WORDS = 4  # theme words in an id
WORD_CHARS = 16  # characters kept of each word
# What a stage accepts as a movie id (it names files): lower-case words joined by "-",
# never a path, a hidden file or an empty name.
MOVIE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_MOVIE_ID = 96


def movie_id_for(theme: str) -> str:
    """Readable and stable: the theme's first words (accents folded, each cut to 16
    characters) plus a hash of the whole theme, so two themes that share their first words differ."""
    folded = unicodedata.normalize("NFKD", " ".join(theme.split())).encode("ascii", "ignore").decode().lower()
    words = [w[:WORD_CHARS] for w in re.findall(r"[a-z0-9]+", folded)[:WORDS]]
    return "-".join(words or ["movie"]) + "-" + digest(" ".join(theme.split()))[:6]


def is_movie_id(text: str) -> bool:
    """Whether ``text`` is an id this project makes: safe as a file name, never a path."""
    return len(text) <= MAX_MOVIE_ID and MOVIE_ID.fullmatch(text) is not None


def item_seed(*parts: Any) -> int:
    """A seed from the stage seed and the item's parts, so reordering items changes nothing."""
    return int(digest(*parts)[:8], 16)


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of a model's ``attempt``-th try at an item: the stage seed first, then fresh ones."""
    return seed if attempt == 0 else item_seed(seed, "attempt", attempt) % 2**31
