"""Stable names and seeds: a movie's id from its theme, an item's seed from its parts.

Both are content hashes, the same in every process and on every machine, so a
movie keeps its id and its noise whatever else is in the dataset.
"""

from __future__ import annotations

import re
from typing import Any

from .cache import digest


def movie_id_for(theme: str) -> str:
    """Readable and stable: the theme's first words plus a hash of the whole theme."""
    words = re.findall(r"[a-z0-9]+", theme.lower())[:4]
    return "-".join(words or ["movie"]) + "-" + digest(" ".join(theme.split()))[:6]


def item_seed(*parts: Any) -> int:
    """A seed from the stage seed and the item's parts, so reordering items changes nothing."""
    return int(digest(*parts)[:8], 16)


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of a model's ``attempt``-th try at an item: the stage seed first, then fresh ones."""
    return seed if attempt == 0 else item_seed(seed, "attempt", attempt) % 2**31
