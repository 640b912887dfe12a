"""The movie plot: what every backend reads and writes.

A plot is the output of the three-level story expansion. Its pieces are plain
dataclasses so that a story writer (offline or LLM) and everything downstream
(style, render, qa, evaluate) agree on one vocabulary, and each piece maps onto
one table under ``data/movie_plots/`` (see ``schemas.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The method limits frame actions to these eight.
ACTIONS: tuple[str, ...] = ("stand", "sit", "look", "talk", "hold", "squat", "walk", "hug")

# Present participles used in frame prompts ("... is walking ...").
ACTION_VERBS: dict[str, str] = {
    "stand": "standing",
    "sit": "sitting",
    "look": "looking",
    "talk": "talking",
    "hold": "holding",
    "squat": "squatting",
    "walk": "walking",
    "hug": "hugging",
}

# Facial expressions a frame may carry; the renderer draws each one.
EXPRESSIONS: tuple[str, ...] = (
    "smiling",
    "frowning",
    "surprised",
    "calm",
    "worried",
    "determined",
    "laughing",
    "sad",
)

# Clothing colours a character may wear, with the RGB the renderer paints.
# Names are distinct enough that a viewer (or a pixel reader) can tell them apart.
CLOTHING_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 30),
    "blue": (30, 70, 200),
    "green": (30, 150, 50),
    "yellow": (235, 200, 30),
    "purple": (120, 40, 160),
    "orange": (235, 120, 20),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
    "brown": (120, 70, 30),
    "pink": (235, 120, 170),
    "grey": (128, 128, 128),
    "teal": (20, 140, 140),
}

# Objects a character may hold; the renderer has a drawing for each.
OBJECTS: tuple[str, ...] = (
    "book",
    "lantern",
    "sword",
    "cup",
    "letter",
    "flower",
    "umbrella",
    "key",
    "map",
    "basket",
    "phone",
    "camera",
)

# Kinds of place; every location of a movie is one of these, and the renderer
# draws a recognisable background for each.
LOCATION_KINDS: tuple[str, ...] = (
    "forest",
    "beach",
    "street",
    "room",
    "shop",
    "hall",
    "lighthouse",
    "harbor",
    "mountain",
    "desert",
    "snowfield",
    "laboratory",
    "market",
    "station",
    "library",
    "garden",
)


# Words in a place's name that tell its kind, for plots written elsewhere (an LLM, an
# imported story). First match wins, so specific words come before general ones.
KIND_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lighthouse", ("lighthouse",)),
    ("laboratory", ("lab", "workshop", "observatory", "factory", "engine")),
    ("library", ("library", "archive", "study", "bookshop")),
    ("station", ("station", "platform", "railway", "train", "depot")),
    ("harbor", ("harbor", "harbour", "port", "dock", "pier", "wharf", "ship", "boat")),
    ("beach", ("beach", "shore", "coast", "sea", "bay", "cove", "island")),
    ("market", ("market", "bazaar", "fair", "stall")),
    ("shop", ("shop", "store", "bakery", "smith", "forge", "tavern", "inn", "cafe", "bar", "kitchen")),
    ("hall", ("hall", "cathedral", "church", "temple", "palace", "castle", "tower", "court", "mansion", "manor", "throne", "tunnel", "crypt", "wall")),
    ("forest", ("forest", "wood", "jungle", "grove", "glade")),
    ("mountain", ("mountain", "peak", "summit", "cliff", "ridge", "canyon", "cave", "valley")),
    ("desert", ("desert", "dune", "oasis", "sand", "wasteland")),
    ("snowfield", ("snow", "ice", "glacier", "frozen", "tundra", "arctic")),
    ("garden", ("garden", "park", "farm", "field", "meadow", "orchard", "yard", "courtyard")),
    ("street", ("street", "square", "city", "town", "village", "gate", "road", "alley", "avenue", "bridge", "zone", "ruins", "camp")),
    ("room", ("room", "house", "home", "cottage", "bedroom", "office", "shelter", "apartment", "cabin", "attic")),
)


def location_kind(name: str, default: str = "room") -> str:
    """The LOCATION_KINDS member a place name suggests (``default`` when none does)."""
    text = name.lower()
    for kind, words in KIND_WORDS:
        if any(w in text for w in words):
            return kind
    return default


@dataclass(frozen=True)
class Character:
    char_id: str  # stable within a movie: "c0", "c1", "c2"
    name: str  # used in dialogue and QA, never in frame prompts
    appearance: str  # e.g. "a tall woman with short grey hair in red"
    clothing_colour: str  # a key of CLOTHING_COLOURS


@dataclass(frozen=True)
class Location:
    name: str  # e.g. "the old lighthouse"
    kind: str  # a member of LOCATION_KINDS


@dataclass(frozen=True)
class Movie:
    movie_id: str
    theme: str
    title: str
    genre: str
    overview: str
    style_description: str  # tone and look adjectives
    style_keyword: str  # one word, e.g. "Gothic"
    locations: tuple[Location, ...]
    characters: tuple[Character, ...]


@dataclass(frozen=True)
class Substory:
    """Level 1 unit. ``cause`` is why it happens: the previous substory's outcome."""

    movie_id: str
    substory_index: int
    title: str
    scene: str  # a location name of the movie
    content: str
    cause: str  # true answer to "why" questions about this substory
    outcome: str  # what it leads to; the next substory's cause


@dataclass(frozen=True)
class Tinystory:
    """Level 2 unit, a beat inside one substory."""

    movie_id: str
    substory_index: int
    tinystory_index: int  # within its substory
    title: str
    scene: str  # a location name of the movie; every frame of it is there
    content: str


@dataclass(frozen=True)
class Frame:
    """Level 3 unit: one keyframe, structured and as a text prompt."""

    movie_id: str
    frame_index: int  # 0-based, over the whole movie, in story order
    substory_index: int
    tinystory_index: int
    location: str  # == the tinystory's scene
    location_kind: str
    characters: tuple[str, ...]  # char_ids present, in drawing order (left to right)
    action: str  # one of ACTIONS
    expression: str  # one of EXPRESSIONS
    held_object: str | None  # one of OBJECTS, held by the first character
    prompt: str  # "In <place>, <appearance> is <action>..., with <expression>."


@dataclass(frozen=True)
class DialogueLine:
    movie_id: str
    line_index: int  # 0-based over the movie
    after_frame: int  # the frame this line follows
    speaker: str  # char_id, present in ``after_frame``
    text: str


@dataclass(frozen=True)
class PlotQA:
    """A QA pair written by the story levels (what / why / how / where / overview)."""

    movie_id: str
    level: str  # "movie", "level1", "level2", "level3"
    qtype: str  # "overview", "what", "why", "how", "where"
    question: str
    answer: str
    evidence_frames: tuple[int, ...]
    source: str  # where the answer lives in the plot, e.g. "substory:2:cause"


@dataclass(frozen=True)
class Quarantined:
    """A model answer that could not be used: kept with its prompt and the reason, never dropped."""

    movie_id: str
    stage: str  # "movie_plots" or "qa_pairs"
    step: str  # where in the stage, e.g. "level1", "level3:1.2", "qa:0.1"
    prompt: str  # the request's messages, as JSON
    response: str  # the raw text the model returned ("" if none)
    reason: str  # why it was not used


@dataclass(frozen=True)
class MoviePlot:
    movie: Movie
    substories: tuple[Substory, ...]
    tinystories: tuple[Tinystory, ...]
    frames: tuple[Frame, ...]
    dialogue: tuple[DialogueLine, ...]
    qa: tuple[PlotQA, ...] = field(default=())
    quarantine: tuple[Quarantined, ...] = field(default=())  # parts a model failed to write

    def character(self, char_id: str) -> Character:
        for c in self.movie.characters:
            if c.char_id == char_id:
                return c
        raise KeyError(f"{self.movie.movie_id}: no character {char_id!r}")


def as_row(item) -> dict:
    """A dataclass as a table row (tuples become lists)."""
    row = asdict(item)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}
