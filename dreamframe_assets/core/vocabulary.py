"""The words of a plot: the eight actions, expressions, held objects, clothing colours,
kinds of place and question types, with the word stems that map free text onto them.

Every writer (offline, LLM) and importer (the authors' files) maps text through the
functions here, and the renderer, the QA writer and the answerers read the same
tables, so "crouching" is a squat and "navy" is blue everywhere.
"""

from __future__ import annotations

import re
from typing import Any

# ---------------------------------------------------------------- questions
PLOT_LEVELS = ("movie", "level1", "level2", "level3")
QA_LEVELS = (*PLOT_LEVELS, "grounded")
STORY_QTYPES: tuple[str, ...] = ("what", "why", "how", "where")  # what the story levels ask
PLOT_QTYPES = ("overview", *STORY_QTYPES)
GROUNDED_QTYPES = ("who", "count", "action", "location", "colour", "order", "speaker")  # read off the frames
QTYPES = (*PLOT_QTYPES, *GROUNDED_QTYPES)
OVERVIEW_QUESTION = "Describe in detail the events that occur in this movie."
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six")  # answers of "How many people ...?"
# Options of a multiple-choice QA: 4, or 3 where the movie has only three values of the kind asked.
MIN_OPTIONS, MAX_OPTIONS = 3, 4
# The quality gates a QA passes to ship, in order (qa/gates.py).
QA_GATES = ("options", "length", "evidence", "oracle", "faithfulness", "duplicate", "reveal", "qtype_cap")


# ---------------------------------------------------------------- what a frame shows
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


# ---------------------------------------------------------------- free text -> the vocabulary
# Verbs for each of the eight actions, as base forms (inflections are derived below).
ACTION_WORDS: dict[str, tuple[str, ...]] = {
    "hug": ("hug", "embrace", "cuddle"),
    "squat": ("squat", "squatting", "crouch", "kneel", "knelt"),
    "sit": ("sit", "sat", "seated", "rest"),
    "walk": ("walk", "stroll", "run", "ran", "wander", "pace", "stride", "strode", "hurry", "hurries", "climb", "march"),
    "hold": ("hold", "held", "carry", "carries", "grip", "clutch", "grab", "raise", "lift"),
    "talk": ("talk", "speak", "spoke", "say", "said", "chat", "argue", "shout", "whisper", "discuss", "call", "tell",
             "told", "ask", "explain", "reply", "replies"),
    "look": ("look", "watch", "gaze", "stare", "observe", "peer", "examine", "inspect", "read", "search", "glance", "study", "studies"),
    "stand": ("stand", "stood", "wait", "pose"),
}


def _inflections(base: str) -> set[str]:
    """walk -> walks, walking; run -> running; pace -> pacing; watch -> watches."""
    forms = {base, base + "s", base + "es", base + "ed", base + "ing"}
    if base.endswith("e"):
        forms |= {base[:-1] + "ing", base + "d"}
    if len(base) >= 3 and base[-1] not in "aeiouwy" and base[-2] in "aeiou" and base[-3] not in "aeiou":
        forms |= {base + base[-1] + "ing", base + base[-1] + "ed"}
    return forms


_ACTION_OF = {form: a for a, words in ACTION_WORDS.items() for w in words for form in _inflections(w)}


# Word stems for each expression: a word starting with one names it; a stem ending in "$"
# must be the whole word ("glad$" is not "glade", "sad$" is not "saddle").
EXPRESSION_STEMS: dict[str, tuple[str, ...]] = {
    "laughing": ("laugh", "giggl", "amused"),
    "smiling": ("smil", "happy", "happi", "joy", "overjoy", "grin$", "grins$", "grinning", "grinned", "cheer",
                "content$", "contented", "hopeful", "relieved", "glad$", "gladly"),
    "surprised": ("surpris", "shock", "astonish", "amaz", "startl", "stunned", "curious", "wonder$", "wondering"),
    "sad": ("sad$", "sadly", "sadness", "tear$", "tears$", "tearful", "cry$", "cries$", "cried$", "crying", "grief",
            "griev", "sorrow", "despair", "mourn", "melanchol", "gloom"),
    "worried": ("worr", "concern", "anxi", "nervous", "fear$", "fears$", "feared", "fearful", "tense$", "afraid",
                "scared", "uneasy", "alarm"),
    "frowning": ("frown", "angry", "angri", "anger", "scowl", "furious", "annoy", "irritat", "suspicious", "stern$"),
    "determined": ("determin", "resolv", "resolut", "firm$", "firmly", "intense", "serious", "focus", "brave",
                   "bold$", "boldly"),
    "calm": ("calm", "peace", "seren", "relax", "quiet", "gentle", "thoughtful", "neutral"),
}

# Word stems for each held object, matched the same way.
OBJECT_STEMS: dict[str, tuple[str, ...]] = {
    "sword": ("sword", "blade", "dagger", "spear", "knife", "axe$", "shield", "weapon", "hammer", "metal"),
    "book": ("book", "journal", "diary", "tome$", "notebook", "ledger"),
    "lantern": ("lantern", "lamp$", "lamps$", "torch", "candle", "flashlight"),
    "cup": ("cup$", "cups$", "mug$", "mugs$", "bowl", "goblet", "glass$", "bottle", "teacup", "flask", "soup"),
    "letter": ("letter", "note$", "notes$", "scroll", "paper", "message", "envelope", "page$", "pages$"),
    "flower": ("flower", "rose$", "roses$", "bouquet", "lily", "lilies", "blossom"),
    "umbrella": ("umbrella", "parasol"),
    "key": ("key$", "keys$"),
    "map": ("map$", "maps$", "chart$", "charts$"),
    "basket": ("basket", "bag$", "bags$", "sack", "box$", "boxes$", "crate", "satchel", "bread", "loaf", "loaves"),
    "phone": ("phone", "radio"),
    "camera": ("camera",),
}


# Colour words beyond CLOTHING_COLOURS, and the name each is nearest to.
COLOUR_WORDS: dict[str, str] = {
    "navy": "blue", "azure": "blue", "cobalt": "blue", "indigo": "blue", "sky": "blue", "denim": "blue",
    "crimson": "red", "scarlet": "red", "maroon": "red", "burgundy": "red", "ruby": "red", "cherry": "red",
    "gold": "yellow", "golden": "yellow", "mustard": "yellow", "lemon": "yellow", "amber": "orange",
    "rust": "orange", "copper": "orange", "coral": "orange", "peach": "orange", "tangerine": "orange",
    "silver": "grey", "gray": "grey", "charcoal": "grey", "slate": "grey", "ash": "grey",
    "beige": "brown", "tan": "brown", "khaki": "brown", "chocolate": "brown", "umber": "brown", "ochre": "brown",
    "cream": "white", "ivory": "white", "snow": "white", "pearl": "white", "ebony": "black", "jet": "black",
    "olive": "green", "emerald": "green", "lime": "green", "jade": "green", "forest": "green", "sage": "green",
    "violet": "purple", "lavender": "purple", "lilac": "purple", "plum": "purple", "mauve": "purple",
    "magenta": "pink", "rose": "pink", "fuchsia": "pink", "salmon": "pink",
    "turquoise": "teal", "cyan": "teal", "aqua": "teal", "aquamarine": "teal",
}


def _words(text: Any) -> list[str]:
    return re.findall(r"[a-z]+", str(text or "").lower())


def _stem_match(text: Any, table: dict[str, tuple[str, ...]]) -> str | None:
    """The key of the first word in ``text`` that one of the key's stems names."""
    for word in _words(text):
        for key, stems in table.items():
            if any(word == s[:-1] if s.endswith("$") else word.startswith(s) for s in stems):
                return key
    return None


def find_action(text: Any, allowed: tuple[str, ...] | list[str] = ACTIONS) -> str | None:
    """The action of the first verb in ``text`` among ``allowed`` ("is crouching" -> squat), or None."""
    for word in _words(text):
        action = _ACTION_OF.get(word)
        if action in allowed:
            return action
    return None


def find_expression(text: Any) -> str | None:
    """The expression the first feeling word in ``text`` names ("anxiously" -> worried), or None."""
    return _stem_match(text, EXPRESSION_STEMS)


def find_object(text: Any) -> str | None:
    """The object the first thing-word in ``text`` names ("a brass lamp" -> lantern), or None."""
    return _stem_match(text, OBJECT_STEMS)


def find_colour(text: Any) -> str | None:
    """The clothing colour ``text`` names: the last colour word after the last "in" / "wearing"
    ("black hair, in dark navy blue" -> blue), else the last colour word of all, else None."""
    words = _words(text)
    worn = max((i for i, w in enumerate(words) if w in ("in", "wearing", "dressed")), default=-1)
    for part in (words[worn + 1 :], words[: worn + 1]):
        for word in reversed(part):
            name = word if word in CLOTHING_COLOURS else COLOUR_WORDS.get(word)
            if name is not None:
                return name
    return None


def map_action(value: Any) -> str:
    """One of ACTIONS for a model's action word ("crouching" -> squat); ValueError if none fits."""
    action = find_action(value)
    if action is None:
        raise ValueError(f"action {value!r} is not one of {list(ACTIONS)}")
    return action


def map_expression(value: Any) -> str:
    """One of EXPRESSIONS for a model's expression word; "calm" when none fits."""
    text = str(value or "").lower()
    return text if text in EXPRESSIONS else find_expression(text) or "calm"


def map_object(value: Any) -> str | None:
    """One of OBJECTS for a model's object word, or None (nothing held, or nothing we draw)."""
    text = str(value or "").lower()
    if not text or text in ("null", "none", "nothing"):
        return None
    return text if text in OBJECTS else find_object(text)


def map_colour(value: Any) -> str:
    """The CLOTHING_COLOURS name nearest to a model's colour ("navy" -> blue, "#8a2be2" -> purple)."""
    text = str(value or "").strip().lower()
    if re.fullmatch(r"#?[0-9a-f]{6}", text):
        rgb = tuple(int(text.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
        return min(CLOTHING_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(CLOTHING_COLOURS[n], rgb)))
    colour = find_colour(text)
    if colour is None:
        raise ValueError(f"clothing colour {value!r} is not a colour; use one of {list(CLOTHING_COLOURS)}")
    return colour


# ---------------------------------------------------------------- frame prompts
# "generate an image in <Keyword> style: ..." (the authors' prompt head; group 1: the keyword)
PROMPT_HEAD = re.compile(r"^\s*generate an image in ([A-Za-z-]+) style:\s*", re.I)
# "In the harbour, ...": a prompt's leading place (group 1: the place)
LEADING_PLACE = re.compile(r"^(?:in|at|on|inside|outside|near|by|within)\s+(?:front of\s+)?([^,]+?),\s*", re.I)
# "who looks like <Famous Name>", "resembling <Famous Name>": likenesses of real people
LOOKALIKE = re.compile(
    r"[,;]?\s*(?i:\b(?:who\s+|that\s+)?(?:looks?\s+(?:just\s+|a\s+lot\s+|exactly\s+)?like|resembl(?:es|ing|e)|"
    r"(?:is\s+)?(?:a\s+)?(?:dead\s+)?ringer\s+for|(?:is\s+)?the\s+(?:spitting\s+)?image\s+of|a\s+look-?alike\s+of))"
    r"\s+(?i:(?:a\s+)?(?:young|younger|old|older)\s+)?[A-Z][\w.'-]*(?:\s+(?:[A-Z][\w.'-]*|de|van|von|da|di|del|la|le))*"
)


# Any other likeness of someone ("looks like actor tom hanks in brown"), up to the clothing or
# the clause's end; a likeness to something ("looks like a sailor") is appearance and stays.
LIKENESS = re.compile(
    r"[,;]?\s*\b(?:who\s+|that\s+)?(?:looks?\s+(?:just\s+|a\s+lot\s+|exactly\s+)?like|resembl(?:es|ing|e))"
    r"\s+(?!(?:a|an|the|some|his|her|their)\s).+?"
    r"(?=\s+(?:in|wearing|dressed|with)\s|[,;.]|$)", re.I)


def drop_lookalikes(text: str) -> str:
    """'a man who looks like <famous person>, with grey hair' -> 'a man, with grey hair';
    'a man looks like Gerard Butler in brown' -> 'a man in brown'."""
    out = LIKENESS.sub("", LOOKALIKE.sub("", text))
    out = re.sub(r"\s+([,.;])", r"\1", out)
    out = re.sub(r",\s*,", ",", out)
    return " ".join(out.split()).strip(" ,;")


# ---------------------------------------------------------------- phrases
# Kind of place -> the preposition before its name ("in the pine forest", "at the old lighthouse").
KIND_PREP: dict[str, str] = {
    "forest": "in", "beach": "on", "street": "in", "room": "in", "shop": "in", "hall": "in",
    "lighthouse": "at", "harbor": "at", "mountain": "at", "desert": "in", "snowfield": "on",
    "laboratory": "in", "market": "at", "station": "at", "library": "in", "garden": "in",
}

# Expression -> the adjective of "X looks ..." ("smiling" -> "happy").
EXPRESSION_ADJ: dict[str, str] = {
    "smiling": "happy", "frowning": "displeased", "surprised": "surprised", "calm": "calm",
    "worried": "worried", "determined": "determined", "laughing": "amused", "sad": "sad",
}


def with_article(word: str) -> str:
    """'a lantern' / 'an umbrella'."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def doing_phrase(action: str, held_object: str | None) -> str:
    """What a frame shows someone doing, as a verb phrase: 'holding a lantern', 'hugging someone', 'walking'."""
    verb = ACTION_VERBS[action]
    if action == "hold" and held_object:
        return f"{verb} {with_article(held_object)}"
    if action == "hug":
        return f"{verb} someone"
    return verb


def place_phrase(kind: str | None, name: str) -> str:
    """'in the pine forest' / 'at the old lighthouse' ('at' for a place of unknown kind)."""
    return f"{KIND_PREP.get(kind or '', 'at')} {name}"
