"""The embedded offline story writer: stage 1 of DreamFrame without an LLM.

It performs the method's three levels of story expansion with seeded word banks
and sentence templates, so the whole pipeline (style, render, QA, evaluation)
runs and is tested offline, deterministically and fast. Each level is a plain
function with the inputs an LLM prompt for that level would get, so an LLM
writer can mirror the same shape and be swapped in behind the same ``write``.

Beyond the paper, the plot closes its known gaps: characters are described by
appearance (never as celebrity look-alikes), substories are linked by cause so
"why" answers are true, every QA names the plot field that holds its answer
(``source``) and the frames it is about (``evidence_frames``), dialogue lines
have speakers, and question types are balanced instead of mostly "why".
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Sequence

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
    ACTION_VERBS,
    ACTIONS,
    CLOTHING_COLOURS,
    EXPRESSION_ADJ,
    EXPRESSIONS,
    KIND_PREP,
    LOCATION_KINDS,
    OBJECTS,
    OVERVIEW_QUESTION,
    STORY_QTYPES,
    doing_phrase,
    with_article as _art,
)

VERSION = 2

# Genre mix of the released DreamFrame data (%), used when the theme names none.
GENRE_MIX: dict[str, float] = {
    "Drama": 25.9, "Comedy": 13.0, "Romance": 9.7, "Anime": 9.7, "Adventure": 6.4,
    "Family": 6.4, "Historical": 5.4, "Horror": 4.3, "Mystery": 4.3, "Action": 3.2,
    "Crime": 3.2, "Fantasy": 3.2, "Disaster": 2.1, "Sci-Fi": 2.1, "Biography": 1.1,
}

# Theme words that suggest a genre. Keys of 5+ letters match as word prefixes,
# shorter ones as whole words (plural "s" allowed), so "war" misses "warm".
GENRE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Horror": ("haunt", "ghost", "curse", "vampire", "zombie", "monster", "demon", "creepy"),
    "Mystery": ("detective", "mystery", "mysterious", "clue", "secret", "disappear", "missing", "riddle"),
    "Crime": ("theft", "thief", "thieves", "steal", "stole", "heist", "robber", "murder", "smuggl", "gang"),
    "Romance": ("love", "lover", "romance", "romantic", "wedding", "sweetheart", "kiss"),
    "Sci-Fi": ("robot", "scientist", "experiment", "space", "alien", "planet", "android", "invent", "future"),
    "Fantasy": ("enchant", "magic", "dragon", "wizard", "fairy", "spell", "kingdom", "witch", "elf"),
    "Disaster": ("avalanche", "earthquake", "flood", "volcano", "tsunami", "sandstorm", "wildfire", "hurricane", "tornado"),
    "Adventure": ("caravan", "treasure", "expedition", "journey", "explore", "quest", "voyage", "pirate", "map"),
    "Comedy": ("rival", "baker", "bakery", "funny", "prank", "clumsy", "chaos", "silly"),
    "Family": ("sibling", "grandmother", "grandfather", "family", "farm", "farmer", "brother", "sister", "mother", "father"),
    "Historical": ("king", "queen", "empire", "century", "war", "medieval", "ancient", "castle", "knight"),
    "Drama": ("pianist", "concert", "grief", "aging", "orchestra", "farewell"),
    "Action": ("fight", "chase", "escape", "battle", "mission", "spy"),
    "Biography": ("biography", "memoir"),
    "Anime": ("anime", "manga", "samurai"),
}

# Per genre: one-word style keywords, and tone/look adjectives for the description.
GENRE_STYLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Drama": (("Dramatic", "Cinematic", "Painterly"), ("moody", "warm", "intimate", "softly lit", "muted", "golden")),
    "Comedy": (("Whimsical", "Playful", "Cartoonish"), ("bright", "colourful", "bouncy", "sunny", "cheerful", "lively")),
    "Romance": (("Romantic", "Dreamy", "Impressionist"), ("soft", "glowing", "pastel", "tender", "hazy", "warm")),
    "Anime": (("Anime", "Manga", "Vibrant"), ("vibrant", "clean-lined", "expressive", "saturated", "crisp", "airy")),
    "Adventure": (("Epic", "Adventurous", "Sweeping"), ("sunlit", "wide", "rugged", "vivid", "windswept", "dusty")),
    "Family": (("Storybook", "Heartwarming", "Whimsical"), ("warm", "gentle", "cosy", "bright", "homely", "soft")),
    "Historical": (("Vintage", "Painterly", "Sepia"), ("faded", "earthy", "candlelit", "textured", "stately", "grand")),
    "Horror": (("Gothic", "Macabre", "Eerie"), ("dark", "shadowy", "cold", "candlelit", "decaying", "misty")),
    "Mystery": (("Noir", "Moody", "Shadowy"), ("dim", "smoky", "rain-soaked", "high-contrast", "secretive", "hushed")),
    "Action": (("Kinetic", "Gritty", "Explosive"), ("fast", "sharp", "high-contrast", "dusty", "bold", "harsh")),
    "Crime": (("Noir", "Gritty", "Hardboiled"), ("neon-lit", "rain-soaked", "grimy", "shadowy", "tense", "cold")),
    "Fantasy": (("Fairytale", "Mystical", "Ethereal"), ("luminous", "enchanted", "misty", "jewel-toned", "dreamlike", "soft")),
    "Disaster": (("Apocalyptic", "Stark", "Dramatic"), ("stormy", "desolate", "harsh", "chaotic", "bleak", "cold")),
    "Sci-Fi": (("Futuristic", "Cyberpunk", "Retrofuturist"), ("sleek", "glowing", "metallic", "cool-toned", "neon", "clean")),
    "Biography": (("Realistic", "Documentary", "Naturalistic"), ("natural", "understated", "honest", "soft", "grounded", "plain")),
}

# Location names per kind; each name makes its kind recognisable.
LOCATION_NAMES: dict[str, tuple[str, ...]] = {
    "forest": ("the pine forest", "the birch woods", "the mossy forest clearing", "the old oak forest", "the misty woodland path"),
    "beach": ("the pebble beach", "the sandy cove", "the windswept shore", "the tide pools on the beach", "the driftwood beach"),
    "street": ("the cobbled street", "the narrow alley", "the main street", "the lamplit avenue", "the rainy side street"),
    "room": ("the small kitchen", "the attic bedroom", "the candlelit parlour", "the cluttered study", "the quiet sitting room"),
    "shop": ("the corner shop", "the antique shop", "the tailor's shop", "the flower shop", "the hardware store"),
    "hall": ("the town hall", "the great hall", "the banquet hall", "the echoing entrance hall", "the old dance hall"),
    "lighthouse": ("the old lighthouse", "the lighthouse gallery", "the lamp room of the lighthouse", "the lighthouse stairwell"),
    "harbor": ("the fishing harbor", "the harbor pier", "the busy harbor quay", "the boatyard by the harbor"),
    "mountain": ("the mountain pass", "the rocky ridge", "the mountain hut", "the cliffside trail", "the high mountain meadow"),
    "desert": ("the open desert", "the red dunes", "the desert oasis", "the dry canyon", "the salt flats"),
    "snowfield": ("the frozen snowfield", "the icy plain", "the snowbound valley", "the glacier edge"),
    "laboratory": ("the cramped laboratory", "the basement lab", "the research laboratory", "the robotics workshop"),
    "market": ("the market square", "the covered market", "the night market", "the fish market", "the spice market"),
    "station": ("the train station", "the station platform", "the bus station", "the old railway station"),
    "library": ("the public library", "the library reading room", "the rare book archive", "the library stacks"),
    "garden": ("the walled garden", "the vegetable garden", "the herb garden", "the botanical garden", "the orchard garden"),
}

# Theme words that bring their own places: (key, kind, names). When the theme
# says "a/an/the <modifier> <key>" and the key is a place noun, the theme's own
# phrase ("the enchanted forest") comes first.
THEME_PLACES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("lighthouse", "lighthouse", ("the old lighthouse", "the lamp room of the lighthouse")),
    ("keeper", "room", ("the keeper's cottage",)),
    ("bottle", "beach", ("the rocky shore",)),
    ("winter", "snowfield", ("the snowy headland",)),
    ("snow", "snowfield", ("the snowy headland",)),
    ("baker", "shop", ("the village bakery", "the bakery kitchen")),
    ("bakery", "shop", ("the village bakery", "the bakery kitchen")),
    ("village", "street", ("the village high street",)),
    ("festival", "market", ("the festival market",)),
    ("inventor", "laboratory", ("the inventor's workshop",)),
    ("robot", "laboratory", ("the robotics workshop",)),
    ("farm", "garden", ("the farm's vegetable garden", "the farmhouse kitchen")),
    ("detective", "room", ("the detective's office",)),
    ("station", "station", ("the midnight train station", "the station platform")),
    ("train", "station", ("the midnight train station",)),
    ("forest", "forest", ("the deep forest",)),
    ("woods", "forest", ("the deep woods",)),
    ("grandmother", "room", ("the grandmother's cottage",)),
    ("pianist", "hall", ("the concert hall", "the rehearsal room")),
    ("concert", "hall", ("the concert hall",)),
    ("desert", "desert", ("the open desert",)),
    ("caravan", "desert", ("the caravan camp in the dunes",)),
    ("sandstorm", "desert", ("the dune ridge",)),
    ("librar", "library", ("the old library", "the rare book archive")),
    ("book", "library", ("the library stacks",)),
    ("mountain", "mountain", ("the summit ridge", "the mountain hut")),
    ("climber", "mountain", ("the base camp",)),
    ("summit", "mountain", ("the summit ridge",)),
    ("avalanche", "snowfield", ("the avalanche slope",)),
    ("street", "street", ("the busy street",)),
    ("musician", "street", ("the busy street",)),
    ("painter", "room", ("the painter's studio",)),
    ("market", "market", ("the market square",)),
    ("scientist", "laboratory", ("the research laboratory",)),
    ("experiment", "laboratory", ("the research laboratory",)),
    ("manor", "hall", ("the manor's great hall", "the manor library")),
    ("castle", "hall", ("the castle hall",)),
    ("harbor", "harbor", ("the fishing harbor",)),
    ("harbour", "harbor", ("the fishing harbor",)),
    ("boat", "harbor", ("the harbor pier",)),
    ("ship", "harbor", ("the harbor pier",)),
    ("sea", "beach", ("the windswept shore",)),
    ("beach", "beach", ("the sandy cove",)),
    ("island", "beach", ("the island beach",)),
    ("garden", "garden", ("the walled garden",)),
    ("shop", "shop", ("the corner shop",)),
    ("cafe", "shop", ("the little cafe",)),
    ("school", "hall", ("the school hall",)),
    ("city", "street", ("the city street",)),
    ("town", "street", ("the town's main street",)),
    ("park", "garden", ("the city park garden",)),
    ("kitchen", "room", ("the small kitchen",)),
    ("museum", "hall", ("the museum hall",)),
    ("hospital", "room", ("the hospital ward room",)),
)
# Keys above that are places themselves, so "a haunted manor" -> "the haunted manor".
PLACE_NOUNS: dict[str, str] = {
    "lighthouse": "lighthouse", "forest": "forest", "woods": "forest", "station": "station", "desert": "desert",
    "mountain": "mountain", "street": "street", "market": "market", "manor": "hall", "castle": "hall",
    "harbor": "harbor", "harbour": "harbor", "beach": "beach", "garden": "garden", "shop": "shop",
    "library": "library", "farm": "garden", "bakery": "shop", "laboratory": "laboratory",
}

# Background features per location kind, for frame prompts.
KIND_FEATURES: dict[str, tuple[str, ...]] = {
    "forest": ("a fallen log", "a mossy boulder", "a tall pine", "a narrow trail", "a tangle of roots"),
    "beach": ("the waterline", "a driftwood log", "a row of rock pools", "an upturned rowing boat"),
    "street": ("a lamp post", "a shop window", "a stone doorway", "a street bench", "a row of bicycles"),
    "room": ("the window", "a wooden table", "the fireplace", "a tall bookcase", "an old armchair"),
    "shop": ("the counter", "a crowded shelf", "the shop window", "a stack of crates"),
    "hall": ("the grand staircase", "a tall pillar", "the long table", "the stage", "a high window"),
    "lighthouse": ("the spiral stairs", "the great lamp", "the salt-streaked window", "the iron railing"),
    "harbor": ("a mooring post", "a stack of lobster pots", "the harbor wall", "a moored fishing boat"),
    "mountain": ("a cairn of stones", "a rocky ledge", "a rope line", "a weathered signpost"),
    "desert": ("a sand dune", "a lone palm", "a resting camel", "a weathered rock arch"),
    "snowfield": ("a snowdrift", "a line of footprints", "a frozen boulder", "a snow-covered tent"),
    "laboratory": ("a cluttered workbench", "a glowing machine", "a wall of gauges", "a rack of glass flasks"),
    "market": ("a fruit stall", "a striped awning", "a stack of baskets", "a busy stall"),
    "station": ("the platform edge", "the departure board", "a waiting bench", "the ticket window"),
    "library": ("a long reading table", "the tall shelves", "a rolling ladder", "a reading lamp"),
    "garden": ("a flower bed", "a stone fountain", "a garden bench", "a climbing rose arch"),
}

# Preposition that reads naturally before a location of each kind in QA text.

# Genre -> kinds to prefer when filling the location list beyond the theme's own.
GENRE_KINDS: dict[str, tuple[str, ...]] = {
    "Horror": ("hall", "room", "forest", "garden", "library"),
    "Mystery": ("station", "street", "library", "room", "shop"),
    "Crime": ("street", "station", "harbor", "shop", "room"),
    "Romance": ("garden", "beach", "street", "market", "shop"),
    "Sci-Fi": ("laboratory", "hall", "street", "room"),
    "Fantasy": ("forest", "garden", "mountain", "hall"),
    "Disaster": ("mountain", "snowfield", "desert", "harbor"),
    "Adventure": ("desert", "mountain", "forest", "harbor", "beach"),
    "Comedy": ("shop", "market", "street", "room"),
    "Family": ("room", "garden", "forest", "street"),
    "Historical": ("hall", "street", "market", "library"),
    "Drama": ("room", "hall", "street", "station"),
    "Action": ("street", "station", "harbor", "mountain"),
    "Biography": ("room", "hall", "library", "street"),
    "Anime": ("street", "garden", "station", "room"),
}

# Theme words that point to the object the plot turns on (a member of OBJECTS).
OBJECT_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("message", "letter"), ("letter", "letter"), ("note", "letter"), ("map", "map"), ("book", "book"),
    ("diary", "book"), ("key", "key"), ("lock", "key"), ("lantern", "lantern"), ("lighthouse", "lantern"),
    ("lamp", "lantern"), ("sword", "sword"), ("knight", "sword"), ("flower", "flower"), ("garden", "flower"),
    ("camera", "camera"), ("photo", "camera"), ("phone", "phone"), ("baker", "basket"), ("bread", "basket"),
    ("picnic", "basket"), ("farm", "basket"), ("tea", "cup"), ("coffee", "cup"), ("cafe", "cup"),
    ("rain", "umbrella"), ("umbrella", "umbrella"), ("robot", "key"), ("painter", "flower"), ("manor", "key"),
)

# Role nouns the theme may give its protagonist (plural forms map to singular).
ROLE_WORDS: dict[str, str] = {
    "keeper": "keeper", "baker": "baker", "bakers": "baker", "inventor": "inventor", "detective": "detective",
    "siblings": "older sibling", "sibling": "older sibling", "pianist": "pianist", "guide": "guide", "librarian": "librarian",
    "climber": "climber", "climbers": "climber", "musician": "musician", "painter": "painter",
    "scientist": "scientist", "teacher": "teacher", "doctor": "doctor", "nurse": "nurse", "farmer": "farmer",
    "fisherman": "fisherman", "sailor": "sailor", "soldier": "soldier", "knight": "knight", "student": "student",
    "chef": "chef", "cook": "cook", "writer": "writer", "artist": "artist", "pilot": "pilot", "captain": "captain",
    "thief": "thief", "witch": "witch", "wizard": "wizard", "hunter": "hunter", "gardener": "gardener",
    "photographer": "photographer", "journalist": "journalist", "explorer": "explorer", "traveller": "traveller",
    "princess": "princess", "prince": "prince", "mechanic": "mechanic", "dancer": "dancer",
}
GENRE_ROLES: dict[str, tuple[str, ...]] = {
    "Drama": ("schoolteacher", "widowed tailor", "retired clerk"), "Comedy": ("hapless waiter", "cheerful postman"),
    "Romance": ("florist", "bookbinder"), "Anime": ("high-school student", "courier"),
    "Adventure": ("cartographer", "wandering trader"), "Family": ("single parent", "eldest child"),
    "Historical": ("court scribe", "blacksmith"), "Horror": ("caretaker", "night nurse"),
    "Mystery": ("amateur sleuth", "night watchman"), "Action": ("former soldier", "courier"),
    "Crime": ("pickpocket", "insurance investigator"), "Fantasy": ("apprentice mage", "shepherd"),
    "Disaster": ("rescue worker", "radio operator"), "Sci-Fi": ("engineer", "lab technician"),
    "Biography": ("self-taught composer", "village doctor"),
}
ALLY_ROLES: tuple[str, ...] = (
    "an old friend", "a sharp-tongued neighbour", "a wary stranger", "an eager apprentice",
    "a cousin from the city", "a former rival", "a retired sailor", "a quiet drifter",
)

DETERMINERS = frozenset({"a", "an", "the", "her", "his", "their", "its", "my", "our", "your", "one", "another", "some", "this", "that"})
STOPWORDS = DETERMINERS | frozenset({
    "and", "or", "but", "of", "in", "on", "at", "to", "for", "from", "by", "with", "into", "inside", "near",
    "during", "about", "after", "before", "two", "three", "four", "is", "are", "must", "can", "get", "gets",
    "way", "who", "while", "when", "as", "be",
})
PLURAL_CUES = frozenset({"two", "three", "rival", "rivals", "siblings", "together", "and", "love", "climbers", "friends", "couple", "partners", "travellers", "both", "pair"})

FEMALE_NAMES: tuple[str, ...] = (
    "Mara", "Elena", "Nadia", "Ingrid", "Priya", "Hana", "Leila", "Yara", "Aiko", "Zofia", "Lucia", "Talia",
    "Freya", "Noemi", "Odette", "Imani", "Beatriz", "Marisol", "Astrid", "Greta", "Lorna", "Petra", "Tamsin",
    "Vesna", "Zainab", "Keziah", "Mirela", "Ottilie",
)
MALE_NAMES: tuple[str, ...] = (
    "Tobias", "Jonah", "Felix", "Mateo", "Oskar", "Ruben", "Dmitri", "Soren", "Callum", "Kwame", "Emeric",
    "Idris", "Anselm", "Bastian", "Cyrus", "Dario", "Gideon", "Hamish", "Jasper", "Kenji", "Lorcan",
    "Nikolai", "Orrin", "Pavel", "Quentin", "Rafael", "Teodor", "Viggo", "Yusuf", "Zoltan",
)
BUILDS: tuple[str, ...] = ("tall", "short", "slender", "stocky", "wiry", "broad-shouldered", "lanky", "sturdy")
CHILD_BUILDS: tuple[str, ...] = ("small", "freckled", "lanky", "round-faced")
HAIR_STYLES: tuple[str, ...] = ("short", "long", "curly", "cropped", "wavy", "braided", "tied-back", "shaggy")
HAIR_COLOURS: tuple[str, ...] = ("dark", "auburn", "blond", "chestnut", "copper", "sandy", "jet")
OLD_HAIR_COLOURS: tuple[str, ...] = ("silver", "snowy", "salt-and-pepper", "thinning silver")
ACCESSORIES: tuple[str, ...] = ("round glasses", "a weathered face", "freckles", "a wide-brimmed hat", "a thin scar", "a knitted cap")
# Age group -> (female noun, male noun).
AGE_NOUNS: dict[str, tuple[str, str]] = {
    "child": ("girl", "boy"),
    "young": ("young woman", "young man"),
    "adult": ("woman", "man"),
    "middle": ("middle-aged woman", "middle-aged man"),
    "elderly": ("elderly woman", "elderly man"),
}

# Substory events per story stage: (what the lead does, title). Templates with
# {ally} are used only when the movie has a second character.
SETUP_EVENTS: tuple[tuple[str, str], ...] = (
    ("finds a {thing} {at_place} that seems to point to {stake}", "A Strange {thing}"),
    ("hears the first rumours about {stake} while working {at_place}", "First Rumours"),
    ("returns to find {place} in disarray and a strange {thing} left behind", "What Was Left Behind"),
    ("receives a worn {thing} that seems to be about {stake}", "An Unexpected {thing}"),
    ("makes a rash promise {at_place} about {stake}", "A Rash Promise"),
    ("notices something wrong {at_place} on an ordinary morning", "An Ordinary Morning"),
)
RISING_EVENTS: tuple[tuple[str, str], ...] = (
    ("follows a trail of small clues from {place} toward {stake}", "Following the Trail"),
    ("asks {ally} for help, and the two of them search {place} together", "An Uneasy Alliance"),
    ("argues with {ally} {at_place} over what to do about {stake}", "Harsh Words"),
    ("loses the {thing} {at_place} and has to retrace every step", "The Lost {thing}"),
    ("learns {at_place} that someone else is after the {thing}", "Someone Else Is Watching"),
    ("works through the night {at_place} to be ready for whatever {stake} brings", "A Long Night"),
    ("meets a stranger {at_place} who knows more about {stake} than they admit", "The Stranger"),
    ("hides the {thing} {at_place} while deciding whom to trust", "Whom to Trust"),
    ("teaches {ally} an old trick {at_place}, and a fragile trust begins", "An Old Trick"),
    ("is caught out by bad weather {at_place} and must wait it out", "Waiting Out the Weather"),
    ("uncovers an old record {at_place} that changes everything known about {stake}", "The Old Record"),
    ("tries a daring shortcut across {place} and nearly pays for it", "The Shortcut"),
    ("quarrels with {ally} about the {thing} and storms off from {place}", "A Quarrel"),
    ("sits alone {at_place}, doubting whether any of it is worth the risk", "Second Thoughts"),
)
CLIMAX_EVENTS: tuple[tuple[str, str], ...] = (
    ("confronts the truth about {stake} {at_place}", "The Whole Truth"),
    ("risks everything {at_place} as the trouble around {stake} comes to a head", "Everything at Stake"),
    ("must choose {at_place} between keeping the {thing} and helping {ally}", "A Hard Choice"),
    ("faces the worst of it {at_place} with nothing but the {thing}", "The Darkest Hour"),
)
RESOLUTION_EVENTS: tuple[tuple[str, str], ...] = (
    ("comes back to {place} and puts the {thing} where it belongs", "Where It Belongs"),
    ("celebrates with {ally} {at_place} now that the trouble over {stake} is behind them", "A Small Celebration"),
    ("writes down the whole story {at_place} so that nobody forgets", "So Nobody Forgets"),
    ("says a quiet goodbye {at_place} and looks toward a new beginning", "A New Beginning"),
)
# Second sentence of a substory's content.
SUBSTORY_COLOUR: tuple[str, ...] = (
    "{ally} warns that the trouble is only beginning.",
    "Nobody else {at_place} seems to notice what is happening.",
    "{ally} watches closely, unsure what to believe.",
    "Every creak and shadow {at_place} feels like a warning.",
    "For a moment, the {thing} seems to matter more than anything.",
    "{ally} keeps a secret that will matter later.",
    "The hours pass quickly {at_place}.",
    "It is harder than anyone expected.",
    "Old memories of {place} come flooding back.",
    "A small mistake here will cost them later.",
)
# Outcome clauses per stage; an outcome is the next substory's cause.
SETUP_OUTCOMES: tuple[str, ...] = (
    "{hero} resolves to learn who left the {thing} behind",
    "a second clue turns up and points toward {next_place}",
    "{hero} realises that {stake} cannot be ignored any longer",
    "{ally} agrees to help, though not without doubts",
    "{hero} sets out for {next_place} before dawn",
)
RISING_OUTCOMES: tuple[str, ...] = (
    "the search moves on to {next_place}",
    "{ally} admits to hiding part of the truth",
    "the {thing} goes missing and suspicion falls on {ally}",
    "{hero} and {ally} stop quarrelling and make a plan",
    "an urgent warning arrives about {stake}",
    "{hero} discovers that time is running out",
    "a torn page sends {hero} to {next_place}",
    "{hero} finally trusts {ally} with the {thing}",
    "someone follows {hero} all the way to {next_place}",
    "{hero} understands the real danger behind {stake}",
    "a broken promise drives {hero} toward {next_place}",
    "{ally} goes off alone and has to be found",
    "the weather turns and forces everyone toward {next_place}",
    "{hero} finds a name scratched into the {thing}",
)
CLIMAX_OUTCOMES: tuple[str, ...] = (
    "{hero} finally sees what {stake} means for all of them",
    "the truth about the {thing} finally comes out",
    "{hero} gives up the {thing} to save {ally}",
    "the danger passes and {hero} is left shaken but unbroken",
)
RESOLUTION_OUTCOMES: tuple[str, ...] = (
    "calm returns and {hero} can finally rest",
    "{hero} and {ally} part as true friends",
    "the tale of {stake} becomes a story the whole town retells",
    "{hero} begins a new chapter with the {thing} kept safe",
)
MIDDLE_TRANSITIONS: tuple[str, ...] = ("Then", "Next", "Later", "Soon after", "After that", "In time", "Meanwhile", "From there")
ARC_JOINS: tuple[str, ...] = (", and soon", "; as a result,", ", and so", "; in the end,")

OPENING_SENTENCES: tuple[str, ...] = (
    "Everything changes for {hero}, {role_a}, when {clause}.",
    "{title} begins when {clause}, and {hero}, {role_a}, is the one who has to answer.",
    "When {clause}, the quiet life of {hero}, {role_a}, is turned upside down.",
    "{title} follows {hero}, {role_a}, from the moment {clause}.",
)
CAST_SENTENCES: tuple[str, ...] = (
    "{hero} is joined by {allies}, and none of them is quite what they seem.",
    "Along the way {hero} has to rely on {allies}.",
    "{allies} cross paths with {hero} and are drawn into it too.",
)
SOLO_SENTENCES: tuple[str, ...] = (
    "{hero} faces it alone, with only {place} for company.",
    "With no one else to turn to, {hero} carries the weight alone.",
)
CLOSING_SENTENCES: tuple[str, ...] = (
    "Told in a {style} {keyword} look, {title} is a {genre} story about {stake} and the people it changes.",
    "{title} is a {genre} tale, {style} in tone, set among {n_places} places from {place} to {last_place}.",
    "Shot through with a {keyword} mood, {title} turns {stake} into a {genre} story that is {style}.",
)

# Tinystory beats: (what the lead does, title, needs company). {with} becomes
# " with <names>" or "".
FIRST_BEATS: tuple[tuple[str, str, bool], ...] = (
    ("arrives {at_place}{with} and takes in the scene", "The Arrival", False),
    ("wakes early {at_place}{with}, thinking about the {thing}", "An Early Start", False),
    ("hurries to {place}{with}, determined not to waste a moment", "No Time to Lose", False),
    ("searches {place}{with} for any sign of {stake}", "Looking for Signs", False),
    ("waits {at_place}{with} for news about the {thing}", "Waiting for News", False),
    ("steps into {place}{with} and senses that something is different", "Something Different", False),
)
MIDDLE_BEATS: tuple[tuple[str, str, bool], ...] = (
    ("examines the {thing}{with} under the light {at_place}", "A Closer Look", False),
    ("argues{with} {at_place} about what {stake} really means", "Raised Voices", True),
    ("finds a hidden note tucked inside the {thing} {at_place}", "The Hidden Note", False),
    ("hears footsteps {at_place} and freezes{with}", "Footsteps", False),
    ("laughs{with} {at_place} for the first time in days", "A Moment of Laughter", True),
    ("makes a careful plan{with} {at_place}", "Making a Plan", False),
    ("walks the length of {place}{with}, looking for a way forward", "A Way Forward", False),
    ("shares an old memory{with} {at_place}", "An Old Memory", True),
    ("sits down {at_place}{with} to rest and think", "A Pause to Think", False),
    ("spots a stranger watching from across {place}", "The Watcher", False),
    ("tests an idea with the {thing}{with} {at_place}, and it almost works", "Almost", False),
    ("calls out across {place}{with}, but no answer comes", "No Answer", False),
    ("writes a list of everything known about {stake}{with} {at_place}", "What We Know", False),
    ("repairs something broken {at_place}{with}", "Mending", False),
    ("argues{with} over who should keep the {thing}", "Who Keeps It", True),
    ("kneels {at_place}{with} to study a set of strange marks", "Strange Marks", False),
)
LAST_BEATS: tuple[tuple[str, str, bool], ...] = (
    ("leaves {place}{with}, ready for whatever comes next", "Moving On", False),
    ("makes a decision {at_place} that cannot be undone", "No Going Back", False),
    ("shares a quiet moment{with} {at_place} before the next step", "A Quiet Moment", False),
    ("hugs {others} {at_place}, relieved that the worst is over for now", "Relief", True),
    ("locks the {thing} away {at_place}{with} and turns out the light", "Lights Out", False),
    ("stands {at_place}{with}, watching the sky change", "Watching the Sky", False),
)

# Content words that set the mood (frame expression) of a tinystory.
MOOD_CUES: dict[str, tuple[str, ...]] = {
    "worried": ("footsteps", "freezes", "danger", "storm", "lost", "missing", "watching", "no answer", "trapped"),
    "surprised": ("finds", "hidden", "strange", "different", "spots", "senses"),
    "determined": ("determined", "plan", "decision", "ready", "searches", "hurries", "repairs", "tests"),
    "laughing": ("laughs", "celebrat"),
    "smiling": ("memory", "relieved", "quiet moment", "hugs", "takes in"),
    "sad": ("goodbye", "doubting", "cannot be undone"),
    "frowning": ("argues", "who should keep", "examines"),
    "calm": ("rest", "waits", "watching the sky", "wakes"),
}
# Frame prompt prepositions per action (before a background feature).
ACTION_PREPS: dict[str, tuple[str, ...]] = {
    "stand": ("beside", "near", "in front of"),
    "sit": ("beside", "next to", "on the ground near"),
    "look": ("at", "toward", "up at"),
    "talk": ("beside", "near"),
    "hold": ("near", "beside"),
    "squat": ("beside", "next to", "in front of"),
    "walk": ("past", "toward", "away from"),
    "hug": ("beside", "near"),
}
ACTION_WEIGHTS: dict[str, float] = {"stand": 3, "sit": 2, "look": 2, "talk": 2, "hold": 2, "squat": 1, "walk": 2, "hug": 1.5}

# Dialogue by the speaker's expression. {other} appears only when another
# character is in the frame; the speaker's own name never does.
DIALOGUE: dict[str, tuple[str, ...]] = {
    "worried": (
        "I don't like the look of {place} tonight.", "What if we are already too late for {stake}?",
        "{other}, did you hear that?", "Stay close. Something is wrong here.", "If we lose the {thing} now, we lose everything.",
        "Nobody should be out at {place} at this hour.", "{other}, promise me you will stay where I can see you.",
    ),
    "surprised": (
        "Wait, this {thing} was not here before.", "{other}, come and look at this!", "I never thought I would see {place} like this.",
        "So that is what {stake} was about all along.", "How did nobody notice this?",
        "{other}, the {thing} is warm, as if someone just held it.", "Since when does {place} have a door there?",
    ),
    "determined": (
        "We finish this, whatever it takes.", "Give me the {thing}. I know what to do.",
        "{other}, we are not turning back now.", "One more try. That is all I need.", "By tomorrow, {place} will look different.",
        "I am not leaving {place} without answers.", "{other}, hold the {thing} steady and trust me.",
    ),
    "laughing": (
        "You should have seen your face, {other}!", "I have not laughed like this since before {stake}.",
        "Who knew the {thing} could be so much trouble?", "Stop it, my sides hurt!",
        "{other}, you are worse at this than I am!", "Of all the places to get stuck, it had to be {place}.",
    ),
    "smiling": (
        "It feels good to be back at {place}.", "{other}, I am glad you came.", "Maybe the {thing} brought us luck after all.",
        "We make a good team, don't we?", "I think things are finally turning.",
        "{other}, thank you for not giving up on me.", "I had forgotten how lovely {place} can be.",
    ),
    "sad": (
        "I keep thinking about how it used to be.", "Maybe {stake} was never ours to fix.", "{other}, I am sorry. I should have listened.",
        "This {thing} is all I have left of that time.", "It will never be the same here.",
        "{other}, do you ever wish we had stayed away from {place}?", "I thought {stake} would end differently.",
    ),
    "frowning": (
        "That is not what you told me yesterday, {other}.", "Something about {stake} does not add up.",
        "Who moved the {thing}?", "I don't trust anyone around {place} any more.", "We are wasting time.",
        "{other}, stop keeping things from me.", "This is not how we agreed to handle {stake}.",
    ),
    "calm": (
        "Breathe. We have time.", "Let us think this through before we touch the {thing}.", "{other}, tell me everything from the start.",
        "{place} is quiet. Too quiet, maybe.", "Whatever happens, we face {stake} together.",
        "{other}, sit with me a moment.", "There is an answer somewhere in {place}. We only have to look.",
    ),
}
DIALOGUE_OPENERS: tuple[str, ...] = (
    "", "", "", "Listen. ", "Look. ", "Honestly, ", "Hmm. ", "Right. ", "Oh. ", "Well, ", "Okay. ", "Wait. ",
    "Still, ", "You know, ", "Quiet. ", "Funny. ", "Now, ",
)


# ---------------------------------------------------------------------------
# Small helpers


def _seed(*parts: object) -> int:
    """A stable 64-bit seed from parts (Python's hash() varies by process)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(_seed(*parts))


def _ascii(text: str) -> str:
    """Plain ASCII, collapsed whitespace: accents are folded, other scripts dropped."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = "".join(ch if ch.isprintable() else " " for ch in folded)
    return " ".join(folded.split())


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def _key_matches(key: str, word: str) -> bool:
    """Long keys match word prefixes (haunt -> haunted); short ones whole words."""
    if len(key) >= 5:
        return word.startswith(key)
    return word in (key, key + "s")




SMALL_WORDS = frozenset({"a", "an", "the", "of", "at", "in", "on", "and", "to", "for", "with", "by", "from"})


def _title_case(text: str) -> str:
    words = text.split()
    out = [w if (i and w in SMALL_WORDS) else w[:1].upper() + w[1:] for i, w in enumerate(words)]
    return " ".join(out)


def _decap(text: str, names: Sequence[str]) -> str:
    """Lower-case the first letter unless the sentence starts with a name."""
    first = text.split(" ", 1)[0].strip(",.")
    if first in names or first == "I" or (len(first) > 1 and first.isupper()):
        return text
    return text[:1].lower() + text[1:]


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _join_names(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _strip_end(text: str) -> str:
    return text.rstrip().rstrip(".")


def _bank_text() -> str:
    """All template text, lower-cased: names found in it are never used."""
    parts: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            parts.append(value.lower())
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, (tuple, list, frozenset)):
            for v in value:
                walk(v)

    for bank in (
        LOCATION_NAMES, THEME_PLACES, KIND_FEATURES, BUILDS, CHILD_BUILDS, HAIR_STYLES, HAIR_COLOURS,
        OLD_HAIR_COLOURS, ACCESSORIES, AGE_NOUNS, SETUP_EVENTS, RISING_EVENTS, CLIMAX_EVENTS, RESOLUTION_EVENTS,
        SUBSTORY_COLOUR, SETUP_OUTCOMES, RISING_OUTCOMES, CLIMAX_OUTCOMES, RESOLUTION_OUTCOMES, FIRST_BEATS,
        MIDDLE_BEATS, LAST_BEATS, DIALOGUE, DIALOGUE_OPENERS, ACTION_VERBS, ACTION_PREPS, EXPRESSIONS, OBJECTS,
        CLOTHING_COLOURS, OPENING_SENTENCES, CAST_SENTENCES, SOLO_SENTENCES, CLOSING_SENTENCES, GENRE_STYLES,
        GENRE_ROLES, ALLY_ROLES, ROLE_WORDS, EXPRESSION_ADJ, ARC_JOINS, MIDDLE_TRANSITIONS,
    ):
        walk(bank)
    return "\n".join(parts)


_BANK_TEXT = _bank_text()


# ---------------------------------------------------------------------------
# What a theme says


@dataclass(frozen=True)
class ThemeFacts:
    """What the writer reads from a free-text theme; a pure function of it."""

    text: str  # ASCII, whitespace collapsed
    clause: str  # the theme as a clause ("a lighthouse keeper finds ..."), the first cause
    words: tuple[str, ...]
    stake: str  # what the story is about, e.g. "the winter storm"
    thing: str  # the object the plot turns on, one of OBJECTS
    role: str  # the protagonist's role, "" when the theme names none
    plural: bool  # the theme suggests more than one protagonist


def theme_facts(theme: str) -> ThemeFacts:
    """Read the clause, stake, object and role of a theme with plain word rules."""
    text = _ascii(theme)
    words = tuple(_tokens(text))
    clause_words = text.rstrip(" .!?;:,").split()[:24]
    clause = " ".join(clause_words).strip(" \"'")
    if not any(ch.isalnum() for ch in clause):
        clause = "a quiet day is broken by something nobody expected"
    else:
        clause = _decap(clause, ())

    stake = ""
    for i in range(len(words) - 2, -1, -1):
        if words[i] in DETERMINERS and words[i + 1] not in STOPWORDS:
            tail = []
            for w in words[i + 1 : i + 4]:
                if w in STOPWORDS:
                    break
                tail.append(w)
            det = "another" if words[i] == "another" else "the"
            stake = det + " " + " ".join(tail)
            break
    if not stake:
        content = [w for w in words if w not in STOPWORDS and not w.isdigit()]
        stake = "the " + " ".join(content[-2:]) if content else "the unknown"

    if len(clause.split()) < 3:  # "cats" is no situation: make one, so it is not inside later causes
        clause = f"the story of {stake} begins"

    thing = ""
    for w in words:
        for key, obj in OBJECT_KEYWORDS:
            if _key_matches(key, w):
                thing = obj
                break
        if thing:
            break
    if not thing:
        thing = OBJECTS[_seed("thing", text) % len(OBJECTS)]

    role = ""
    for i, w in enumerate(words):
        base = w[:-2] if w.endswith("'s") else w
        if base in ROLE_WORDS:
            role = ROLE_WORDS[base]
            prev = words[i - 1] if i else ""
            if prev and prev not in STOPWORDS and prev.isalpha() and len(prev) > 2 and prev not in ROLE_WORDS:
                role = prev + " " + role
            break
    plural = any(w in PLURAL_CUES for w in words)
    return ThemeFacts(text, clause, words, stake, thing, role, plural)


def pick_genre(words: Sequence[str], rng: random.Random) -> str:
    """The genre the theme's words vote for (ties: earliest word), else the paper's mix."""
    votes: dict[str, int] = {}
    first: dict[str, int] = {}
    for pos, w in enumerate(words):
        for genre, keys in GENRE_KEYWORDS.items():
            if any(_key_matches(k, w) for k in keys):
                votes[genre] = votes.get(genre, 0) + 1
                first.setdefault(genre, pos)
    if votes:
        return max(votes, key=lambda g: (votes[g], -first[g]))
    genres = list(GENRE_MIX)
    return rng.choices(genres, weights=[GENRE_MIX[g] for g in genres])[0]


def _theme_locations(facts: ThemeFacts) -> list[Location]:
    """Places the theme itself names, in theme order."""
    out: list[Location] = []
    words = facts.words
    for i, w in enumerate(words):
        for key, kind, names in THEME_PLACES:
            if not _key_matches(key, w):
                continue
            if w in PLACE_NOUNS and i >= 2 and words[i - 2] in DETERMINERS and words[i - 1] not in STOPWORDS:
                out.append(Location(f"the {words[i - 1]} {w}", PLACE_NOUNS[w]))
            for name in names:
                out.append(Location(name, kind))
    return out


def _add_location(locations: list[Location], loc: Location) -> None:
    """Add unless a name contains, or is contained in, one already there (keeps 'where' answers unambiguous)."""
    for other in locations:
        if loc.name in other.name or other.name in loc.name:
            return
    locations.append(loc)


def _make_locations(facts: ThemeFacts, genre: str, rng: random.Random) -> tuple[Location, ...]:
    target = rng.randint(12, 14)
    locations: list[Location] = []
    for loc in _theme_locations(facts)[:8]:
        _add_location(locations, loc)
    preferred = list(GENRE_KINDS.get(genre, ()))
    others = [k for k in LOCATION_KINDS if k not in preferred]
    rng.shuffle(others)
    kinds = preferred + others
    pools = {k: list(LOCATION_NAMES[k]) for k in LOCATION_KINDS}
    for pool in pools.values():
        rng.shuffle(pool)
    while len(locations) < target:
        added = False
        for kind in kinds:
            if len(locations) >= target:
                break
            if pools[kind]:
                _add_location(locations, Location(pools[kind].pop(), kind))
                added = True
        if not added:
            break
    return tuple(locations)


def _make_characters(facts: ThemeFacts, avoid: str, rng: random.Random) -> tuple[Character, ...]:
    """1-3 characters described by body, age, hair and one clothing colour; never look-alikes."""
    if facts.plural:
        count = rng.choice((2, 2, 3))
    else:
        count = rng.choices((1, 2, 3), weights=(3, 4, 2))[0]
    words = set(facts.words)
    hero_female = None
    if words & {"her", "she", "woman", "girl", "mother", "sister", "queen", "princess", "grandmother", "witch"}:
        hero_female = True
    elif words & {"his", "he", "man", "boy", "father", "brother", "king", "prince", "fisherman"}:
        hero_female = False
    hero_age = "adult"
    if words & {"aging", "ageing", "old", "elderly", "retired", "veteran"} and "young" not in words:
        hero_age = "elderly"
    elif words & {"young", "teenage", "teen", "student"}:
        hero_age = "young"
    children = bool(words & {"siblings", "children", "kids", "child", "boy", "girl"})
    colours = rng.sample(list(CLOTHING_COLOURS), count)
    avoid = avoid.lower()
    used: list[str] = []
    chars: list[Character] = []
    for idx in range(count):
        female = hero_female if (idx == 0 and hero_female is not None) else rng.random() < 0.5
        bank = FEMALE_NAMES if female else MALE_NAMES
        options = [
            n for n in bank
            if n not in used and n.lower() not in _BANK_TEXT and n.lower() not in avoid
            and not any(n.lower() in u.lower() or u.lower() in n.lower() for u in used)
        ]
        name = rng.choice(options)
        used.append(name)
        if children:
            age = "child"
        elif idx == 0:
            age = hero_age
        else:
            age = rng.choice(("young", "adult", "middle", "elderly"))
        noun = AGE_NOUNS[age][0 if female else 1]
        build = rng.choice(CHILD_BUILDS if age == "child" else BUILDS)
        hair_colour = rng.choice(OLD_HAIR_COLOURS if age == "elderly" else HAIR_COLOURS)
        hair = f"{rng.choice(HAIR_STYLES)} {hair_colour} hair"
        if rng.random() < 0.4:
            accessory = rng.choice([a for a in ACCESSORIES if age != "child" or a != "a weathered face"])
            hair = f"{accessory} and {hair}"
        appearance = f"{_art(build)} {noun} with {hair} in {colours[idx]}"
        chars.append(Character(f"c{idx}", name, appearance, colours[idx]))
    return tuple(chars)


# ---------------------------------------------------------------------------
# Level 1: theme -> movie, substories and their QA


@dataclass(frozen=True)
class Level1:
    movie: Movie
    substories: tuple[Substory, ...]
    qa: tuple[PlotQA, ...]  # one per substory; evidence_frames filled by the caller


def _where(locations: Sequence[Location], name: str) -> str:
    """'in the pine forest' / 'at the old lighthouse'."""
    for loc in locations:
        if loc.name == name:
            return f"{KIND_PREP[loc.kind]} {name}"
    return f"at {name}"


def _stage(i: int, n: int) -> str:
    if i == n - 1 and n > 1:
        return "resolution"
    if i == 0:
        return "setup"
    if i == n - 2 and n >= 3:
        return "climax"
    return "rising"


STAGE_BANKS = {
    "setup": (SETUP_EVENTS, SETUP_OUTCOMES),
    "rising": (RISING_EVENTS, RISING_OUTCOMES),
    "climax": (CLIMAX_EVENTS, CLIMAX_OUTCOMES),
    "resolution": (RESOLUTION_EVENTS, RESOLUTION_OUTCOMES),
}


def _pick_unused(options: Sequence, used: set, rng: random.Random):
    """A random option not used yet (all options again once every one is used)."""
    fresh = [o for o in options if o not in used]
    choice = rng.choice(fresh or list(options))
    used.add(choice)
    return choice


def level1(theme: str, movie_id: str, substories: int, qtypes: Sequence[str], rng: random.Random) -> Level1:
    """Expand a theme into the movie header, linked substories and one QA per substory.

    ``qtypes`` gives each substory's question type, so the caller can balance
    the mix over the whole movie.
    """
    facts = theme_facts(theme)
    genre = pick_genre(facts.words, rng)
    keywords, adjectives = GENRE_STYLES[genre]
    style_keyword = rng.choice(keywords)
    adj = rng.sample(adjectives, rng.choice((3, 4)))
    style_description = ", ".join(adj[:-1]) + " and " + adj[-1]
    locations = _make_locations(facts, genre, rng)
    avoid = facts.text + " " + " ".join(loc.name for loc in locations)
    characters = _make_characters(facts, avoid, rng)
    names = [c.name for c in characters]
    hero = names[0]
    allies = names[1:]
    role = facts.role or rng.choice(GENRE_ROLES[genre])
    thing = facts.thing

    # Scenes: the theme's first place opens the story; later substories move around.
    rest = list(locations[1:])
    rng.shuffle(rest)
    scenes = [locations[0].name] + [rest[k % len(rest)].name for k in range(substories - 1)]

    used_events: set = set()
    used_outcomes: set = set()
    used_colour: set = set()
    contents: set[str] = set()
    cause = facts.clause
    subs: list[Substory] = []
    arc: list[tuple[str, str]] = []  # (event sentence without lead, outcome) for the overview
    for i in range(substories):
        stage = _stage(i, substories)
        events, outcomes = STAGE_BANKS[stage]
        scene = scenes[i]
        next_place = scenes[i + 1] if i + 1 < substories else scene
        ally = allies[(i // 2) % len(allies)] if allies else ""
        fill = {
            "hero": hero, "ally": ally, "place": scene, "at_place": _where(locations, scene),
            "next_place": next_place, "thing": thing, "stake": facts.stake,
        }
        ok_events = [e for e in events if ally or "{ally}" not in e[0]]
        ok_outcomes = [o for o in outcomes if (ally or "{ally}" not in o) and (i + 1 < substories or "{next_place}" not in o)]
        ok_colour = [c for c in SUBSTORY_COLOUR if ally or "{ally}" not in c]
        for _ in range(8):
            event, title_t = _pick_unused(ok_events, used_events, rng)
            colour = _pick_unused(ok_colour, used_colour, rng)
            content = f"{hero} {event.format(**fill)}. {colour.format(**fill)}"
            if content not in contents:
                break
        contents.add(content)
        outcome = _pick_unused(ok_outcomes, used_outcomes, rng).format(**fill)
        title = _title_case(title_t.format(**fill))
        if any(s.title == title for s in subs):
            title = f"{title} ({i + 1})"
        subs.append(Substory(movie_id, i, title, scene, _sentence(content), cause, outcome))
        arc.append((f"{hero} {event.format(**fill)}", outcome))
        cause = outcome

    title = _movie_title(facts, hero, locations[0].name, rng)
    overview = _overview(title, facts, genre, role, hero, allies, arc, style_description, style_keyword, locations, rng)
    movie = Movie(
        movie_id=movie_id, theme=theme, title=title, genre=genre, overview=overview,
        style_description=style_description, style_keyword=style_keyword,
        locations=locations, characters=characters,
    )
    qa = tuple(_level1_qa(movie, s, qtypes[s.substory_index]) for s in subs)
    return Level1(movie, tuple(subs), qa)


TITLE_TEMPLATES: tuple[str, ...] = (
    "{hero} and the {Head}", "The {Head} of {Place}", "Beyond the {Head}", "The Last {Head}",
    "The Secret of {Place}", "A {Season} at {Place}", "Where the {Head} Waits", "{hero}'s {Head}",
)


def _movie_title(facts: ThemeFacts, hero: str, place: str, rng: random.Random) -> str:
    head = facts.stake.split()[-1]
    head = head[:-2] if head.endswith("'s") else head
    title = rng.choice(TITLE_TEMPLATES).format(
        hero=hero, Head=head, Place=place, Season=rng.choice(("Winter", "Summer", "Night", "Season", "Week")),
    )
    return _title_case(title)


def _overview(
    title: str, facts: ThemeFacts, genre: str, role: str, hero: str, allies: Sequence[str],
    arc: Sequence[tuple[str, str]], style: str, keyword: str, locations: Sequence[Location], rng: random.Random,
) -> str:
    fill = {
        "hero": hero, "title": title, "clause": facts.clause, "role_a": _art(role), "allies": _join_names(allies),
        "place": locations[0].name, "last_place": locations[-1].name, "stake": facts.stake, "style": style,
        "keyword": keyword, "genre": genre.lower() if genre != "Sci-Fi" else "science-fiction",
        "n_places": len(locations),
    }
    sentences = [rng.choice(OPENING_SENTENCES).format(**fill)]
    sentences.append(rng.choice(CAST_SENTENCES if allies else SOLO_SENTENCES).format(**fill))
    transitions = list(MIDDLE_TRANSITIONS)
    rng.shuffle(transitions)
    for i, (event, outcome) in enumerate(arc):
        if i == 0:
            lead = "First, "
        elif i == len(arc) - 1:
            lead = "Finally, "
        else:
            lead = transitions[(i - 1) % len(transitions)] + " "
        join = rng.choice(ARC_JOINS)
        sentences.append(_sentence(f"{lead}{event}{join} {outcome}"))
    sentences.append(rng.choice(CLOSING_SENTENCES).format(**fill))
    return " ".join(_sentence(s) for s in sentences)


def _level1_qa(movie: Movie, sub: Substory, qtype: str) -> PlotQA:
    i = sub.substory_index
    t = sub.title
    if qtype == "what":
        q, a, field = f'What happens in "{t}"?', sub.content, "content"
    elif qtype == "why":
        q, a, field = f'Why do the events of "{t}" take place?', f"Because {_strip_end(sub.cause)}.", "cause"
    elif qtype == "how":
        q, a, field = f'How does "{t}" end?', f"It ends when {_strip_end(sub.outcome)}.", "outcome"
    else:
        q = f'Where does "{t}" take place?'
        a, field = f"It takes place {_where(movie.locations, sub.scene)}.", "scene"
    return PlotQA(movie.movie_id, "level1", qtype, q, a, (), f"substory:{i}:{field}")


# ---------------------------------------------------------------------------
# Level 2: one substory -> tinystories and one QA


@dataclass(frozen=True)
class Level2:
    tinystories: tuple[Tinystory, ...]
    qa: PlotQA  # evidence_frames filled by the caller


def level2(l1: Level1, index: int, tinystories: int, qtype: str, rng: random.Random) -> Level2:
    """Split substory ``index`` into beats. Reads only the movie header and that substory."""
    movie = l1.movie
    sub = l1.substories[index]
    facts = theme_facts(movie.theme)
    chars = movie.characters
    names = [c.name for c in chars]

    scenes = [sub.scene]
    others = [loc.name for loc in movie.locations if loc.name != sub.scene]
    rng.shuffle(others)
    for j in range(1, tinystories):
        scenes.append(sub.scene if rng.random() < 0.25 and scenes[-1] != sub.scene else others[j % len(others)])

    used: set = set()
    tiny: list[Tinystory] = []
    for j in range(tinystories):
        if len(chars) == 1:
            cast = [names[0]]
        else:
            size = rng.choices(range(1, len(chars) + 1), weights=[1] + [2] * (len(chars) - 1))[0]
            cast = rng.sample(names, size)
            if names[0] not in cast and rng.random() < 0.6:
                cast[0] = names[0]
        company = len(cast) > 1
        if j == 0:
            bank = FIRST_BEATS
        elif j == tinystories - 1:
            bank = LAST_BEATS
        else:
            bank = MIDDLE_BEATS
        options = [b for b in bank if company or not b[2]]
        text, title_t, _ = _pick_unused(options, used, rng)
        place = scenes[j]
        fill = {
            "place": place, "at_place": _where(movie.locations, place), "thing": facts.thing, "stake": facts.stake,
            "with": (" with " + _join_names(cast[1:])) if company else "", "others": _join_names(cast[1:]),
        }
        content = _sentence(f"{cast[0]} {text.format(**fill)}")
        beat = _title_case(title_t.format(**fill))
        if any(t.title.endswith(": " + beat) for t in tiny):
            beat = f"{beat} ({j + 1})"
        # Prefixed with the substory title: unique over the movie, so questions naming it are unambiguous.
        title = f"{sub.title}: {beat}"
        tiny.append(Tinystory(movie.movie_id, index, j, title, place, content))
    return Level2(tuple(tiny), _level2_qa(movie, sub, tiny, qtype, names, rng))


def _level2_qa(movie: Movie, sub: Substory, tiny: Sequence[Tinystory], qtype: str, names: Sequence[str], rng: random.Random) -> PlotQA:
    i = sub.substory_index
    m = len(tiny)
    if qtype == "what":
        j = rng.randrange(1, m) if m > 1 else 0
        q = f'What happens right after "{tiny[j - 1].title}"?' if j else f'What happens in "{tiny[0].title}"?'
        a, src = tiny[j].content, f"tinystory:{i}.{j}:content"
    elif qtype == "why":
        lead = tiny[0].content.split(" ", 1)[0]
        q = f'What brings {lead} to "{tiny[0].title}"?'
        a, src = f"Because {_strip_end(sub.cause)}.", f"substory:{i}:cause"
    elif qtype == "how":
        q = f'How does "{sub.title}" come to a close?'
        a, src = tiny[-1].content, f"tinystory:{i}.{m - 1}:content"
    else:
        j = rng.randrange(m)
        q = f'Where does "{tiny[j].title}" take place?'
        a, src = f"It takes place {_where(movie.locations, tiny[j].scene)}.", f"tinystory:{i}.{j}:scene"
    return PlotQA(movie.movie_id, "level2", qtype, q, a, (), src)


# ---------------------------------------------------------------------------
# Level 3: overview + one tinystory -> frames, dialogue and 1-2 QA


@dataclass(frozen=True)
class Level3:
    frames: tuple[Frame, ...]
    dialogue: tuple[DialogueLine, ...]
    qa: tuple[PlotQA, ...]


def _mood(content: str) -> str:
    text = content.lower()
    scores = {e: sum(cue in text for cue in cues) for e, cues in MOOD_CUES.items()}
    best = max(scores, key=lambda e: scores[e])
    return best if scores[best] else "calm"


def _cast(movie: Movie, content: str) -> list[Character]:
    """Characters the tinystory names, in the order it names them (as an LLM would read it)."""
    found = []
    for c in movie.characters:
        m = re.search(rf"\b{re.escape(c.name)}\b", content)
        if m:
            found.append((m.start(), c))
    return [c for _, c in sorted(found, key=lambda x: x[0])] or [movie.characters[0]]


def _doing(frame: Frame) -> str:
    """'holding a lantern' / 'walking': the frame's action as a verb phrase."""
    return doing_phrase(frame.action, frame.held_object)


def _frame_prompt(location: str, kind: str, appearances: Sequence[str], action: str, obj: str | None, expression: str, rng: random.Random) -> str:
    who = _join_names(appearances)
    be = "is" if len(appearances) == 1 else "are"
    feature = rng.choice(KIND_FEATURES[kind])
    prep = rng.choice(ACTION_PREPS[action])
    verb = ACTION_VERBS[action]
    if action == "hold":
        phrase = f"{verb} {_art(obj)} {prep} {feature}"
    elif action == "hug":
        phrase = f"{verb} {'each other' if len(appearances) == 2 else 'one another'} {prep} {feature}"
    elif action == "talk":
        phrase = f"{verb} {'together' if len(appearances) > 1 else 'aloud'} {prep} {feature}"
    else:
        phrase = f"{verb} {prep} {feature}"
    if obj and action != "hold":
        phrase += f", carrying {_art(obj)}"
    return f"In {location}, {who} {be} {phrase}, with a {expression} expression."


def level3(
    movie: Movie, tiny: Tinystory, frames: int, first_frame: int, first_line: int,
    qtypes: Sequence[str], rng: random.Random, after: Frame | None = None,
) -> Level3:
    """Draw one tinystory as ``frames`` keyframes with dialogue and len(qtypes) QA.

    Reads the movie header (overview, characters, places) and the tinystory
    only; frame and line numbering continue from ``first_frame``/``first_line``.
    ``after`` is the movie's previous frame, so the first shot does not repeat it.
    """
    facts = theme_facts(movie.theme)
    kind = next((loc.kind for loc in movie.locations if loc.name == tiny.scene), "room")
    cast = _cast(movie, tiny.content)
    mood = _mood(tiny.content)
    by_id = {c.char_id: c for c in movie.characters}

    sigs: list[tuple] = []
    dup: list[bool] = []
    before = (after.characters, after.action, after.expression, after.held_object) if after else None
    for f in range(frames):
        if f and not (f >= 2 and dup[f - 1]) and rng.random() < 0.08:
            sigs.append(sigs[-1])  # a held moment: the same shot twice, with a line between
            dup.append(True)
            continue
        for _ in range(20):
            present = list(cast)
            if f and len(cast) > 1 and rng.random() < 0.3:
                present = [c for c in cast if rng.random() < 0.6] or [cast[0]]
            actions = [a for a in ACTIONS if a != "hug" or len(present) > 1]
            weights = [ACTION_WEIGHTS[a] * (1.5 if a == "talk" and len(present) > 1 else 1) for a in actions]
            action = rng.choices(actions, weights=weights)[0]
            expression = mood if rng.random() < 0.5 else rng.choice(EXPRESSIONS)
            obj = None
            if action == "hold" or rng.random() < 0.2:
                obj = facts.thing if rng.random() < 0.6 else rng.choice(OBJECTS)
            sig = (tuple(c.char_id for c in present), action, expression, obj)
            if sig != (sigs[-1] if sigs else before):
                break
        else:  # twenty equal draws: change the expression so the shots differ
            expression = next(e for e in EXPRESSIONS if e != expression)
            sig = (sig[0], action, expression, obj)
        sigs.append(sig)
        dup.append(False)

    frame_list: list[Frame] = []
    for f, (ids, action, expression, obj) in enumerate(sigs):
        prompt = _frame_prompt(tiny.scene, kind, [by_id[c].appearance for c in ids], action, obj, expression, rng)
        frame_list.append(Frame(
            movie.movie_id, first_frame + f, tiny.substory_index, tiny.tinystory_index, tiny.scene, kind,
            ids, action, expression, obj, prompt,
        ))

    lines: list[DialogueLine] = []
    said: set[str] = set()
    for f, frame in enumerate(frame_list):
        must = f + 1 < frames and dup[f + 1]
        if not must and rng.random() >= 0.6:
            continue
        speaker = by_id[rng.choice(frame.characters)]
        others = [by_id[c].name for c in frame.characters if c != speaker.char_id]
        text = _line(frame.expression, facts, tiny.scene, others, speaker.name, said, rng)
        said.add(text)
        lines.append(DialogueLine(movie.movie_id, first_line + len(lines), frame.frame_index, speaker.char_id, text))

    qa = tuple(_level3_qa(movie, tiny, frame_list, q, rng) for q in qtypes)
    return Level3(tuple(frame_list), tuple(lines), qa)


def _line(expression: str, facts: ThemeFacts, place: str, others: Sequence[str], speaker: str, said: set[str], rng: random.Random) -> str:
    """A dialogue line in the speaker's mood, naming plot things; never the speaker's own name."""
    own = [t for t in DIALOGUE[expression] if others or "{other}" not in t]
    every = [t for e in EXPRESSIONS for t in DIALOGUE[e] if others or "{other}" not in t]
    text = ""
    for attempt in range(12):
        template = rng.choice(own if attempt < 6 and own else every)
        body = template.format(other=rng.choice(others) if others else "", place=place, thing=facts.thing, stake=facts.stake)
        opener = "" if template.startswith("{other}") else rng.choice(DIALOGUE_OPENERS)
        if opener.endswith(", ") and body.split(" ", 1)[0].strip(",.!?") not in ("I", *others):
            body = body[:1].lower() + body[1:]
        text = _sentence(opener + body)
        if speaker.lower() not in text.lower() and text not in said:
            break
    return text


def _unique(frames: Sequence[Frame], key, value) -> list[Frame]:
    """Frames whose ``key`` maps to one ``value`` only within the tinystory (unambiguous questions)."""
    seen: dict = {}
    for f in frames:
        seen.setdefault(key(f), set()).add(value(f))
    return [f for f in frames if len(seen[key(f)]) == 1]


def _level3_qa(movie: Movie, tiny: Tinystory, frames: Sequence[Frame], qtype: str, rng: random.Random) -> PlotQA:
    """One QA about a tinystory's frames; frame-level questions only where one answer fits."""
    names = {c.char_id: c.name for c in movie.characters}
    # Questions name the tinystory by its title only: a place, a look or an action in the
    # question would answer another question of the movie.
    named = f'in "{tiny.title}"'
    evidence = tuple(f.frame_index for f in frames)
    tid = f"{tiny.substory_index}.{tiny.tinystory_index}"
    lead = frames[0].characters[0]
    lead_frames = [f for f in frames if f.characters[0] == lead]
    content_answer = (tiny.content, f"tinystory:{tid}:content")
    if qtype == "what":
        holding = _unique([f for f in frames if f.held_object], lambda f: f.characters[0], lambda f: f.held_object)
        if holding:
            f = rng.choice(holding)
            who = names[f.characters[0]]
            verb = "holding" if f.action == "hold" else "carrying"
            q, a = f"What is {who} {verb} {named}?", f"{who} is {verb} {_art(f.held_object)}."
            src = f"frame:{f.frame_index}:held_object"
        else:
            q = f'What happens {named}?'
            a, src = content_answer
    elif qtype == "why":
        mood = _mood(tiny.content)
        f = rng.choice([f for f in lead_frames if f.expression == mood] or lead_frames)
        who = names[f.characters[0]]
        q = f"Why does {who} look {EXPRESSION_ADJ[f.expression]} {named}?"
        a = f"Because {_strip_end(_decap(tiny.content, list(names.values())))}."
        src = f"tinystory:{tid}:content"
    elif qtype == "how":
        by_doing = _unique(frames, lambda f: (f.characters[0], _doing(f)), lambda f: f.expression)
        by_mood = _unique(frames, lambda f: (f.characters[0], f.expression), lambda f: f.action)
        if by_doing and (rng.random() < 0.5 or not by_mood):
            f = rng.choice(by_doing)
            who = names[f.characters[0]]
            q = f"How does {who} appear while {_doing(f)} {named}?"
            a, src = f"{who} looks {EXPRESSION_ADJ[f.expression]}.", f"frame:{f.frame_index}:expression"
        elif by_mood:
            f = rng.choice(by_mood)
            who = names[f.characters[0]]
            q = f"How is {who} occupied {named} while looking {EXPRESSION_ADJ[f.expression]}?"
            a, src = f"{who} is {_doing(f)}.", f"frame:{f.frame_index}:action"
        else:
            q = f'How does "{tiny.title}" unfold?'
            a, src = content_answer
    else:
        f = rng.choice(lead_frames)
        who = names[f.characters[0]]
        q = f'Where is {who} {_doing(f)} in "{tiny.title}"?'
        a, src = f"{who} is {_where(movie.locations, f.location)}.", f"frame:{f.frame_index}:location"
    return PlotQA(movie.movie_id, "level3", qtype, q, a, evidence, src)


# ---------------------------------------------------------------------------
# The writer


def by_keyframes(question: str, spans: dict[str, tuple[str, int, int]]) -> str:
    """A question's quoted titles replaced by the keyframes they span ('"The Storm: Arrival"' ->
    'the scene in keyframes 5 to 8'): a model sees the keyframes, not the titles, and a title
    made from its story's words would echo the answer."""
    for title in sorted(spans, key=len, reverse=True):
        kind, first, count = spans[title]
        where = f"keyframe {first + 1}" if count == 1 else f"keyframes {first + 1} to {first + count}"
        question = question.replace(f'"{title}"', f"the {kind} in {where}")
    return question


class OfflineStoryWriter:
    """Deterministic story writer with no model and no network.

    Used for tests, CI and offline runs: the same (theme, seed) always gives
    the same plot, so downstream caches hold. It has the shape of an LLM
    writer (three levels, each seeing only its own inputs), so a real LLM
    backend can replace it without changing callers.
    """

    name = "offline"

    def identity(self) -> str:
        """Backend and version, for cache keys: bump VERSION when output changes."""
        return f"offline-story/{VERSION}"

    def write(self, theme: str, movie_id: str, seed: int, substories: int, tinystories: int, frames: int) -> MoviePlot:
        """Write a whole movie: l substories x m tinystories x n frames, plus QA."""
        if not isinstance(theme, str) or not theme.strip():
            raise ValueError(f"theme must be non-blank text, got {theme!r}")
        for label, value in (("substories", substories), ("tinystories", tinystories), ("frames", frames)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        key = theme.strip()
        plan = _rng(key, seed, "plan")

        # One rotation of question types over the whole movie keeps the mix even.
        order = list(STORY_QTYPES)
        plan.shuffle(order)
        counter = iter(range(10**9))

        def next_types(k: int) -> list[str]:
            return [order[next(counter) % 4] for _ in range(k)]

        l1 = level1(key, movie_id, substories, next_types(substories), _rng(key, seed, "level1"))
        movie = replace(l1.movie, theme=theme)
        l1 = replace(l1, movie=movie)
        tinies: list[Tinystory] = []
        frame_list: list[Frame] = []
        lines: list[DialogueLine] = []
        qa1 = list(l1.qa)
        qa2: list[PlotQA] = []
        qa3: list[PlotQA] = []
        per_sub = tinystories * frames
        for i in range(substories):
            l2 = level2(l1, i, tinystories, next_types(1)[0], _rng(key, seed, "level2", i))
            sub_frames = tuple(range(i * per_sub, (i + 1) * per_sub))
            qa1[i] = replace(qa1[i], evidence_frames=sub_frames)
            qa2.append(replace(l2.qa, evidence_frames=sub_frames))
            for t in l2.tinystories:
                l3 = level3(
                    movie, t, frames, len(frame_list), len(lines),
                    next_types(plan.choice((1, 2))), _rng(key, seed, "level3", i, t.tinystory_index),
                    frame_list[-1] if frame_list else None,
                )
                tinies.append(t)
                frame_list.extend(l3.frames)
                lines.extend(l3.dialogue)
                qa3.extend(l3.qa)
        overview = PlotQA(
            movie_id, "movie", "overview", OVERVIEW_QUESTION, movie.overview,
            tuple(range(len(frame_list))), "movie::overview",
        )
        spans = {t.title: ("scene", t.substory_index * per_sub + t.tinystory_index * frames, frames) for t in tinies}
        spans.update({s.title: ("chapter", s.substory_index * per_sub, per_sub) for s in l1.substories})
        qa = tuple(replace(q, question=by_keyframes(q.question, spans)) for q in (overview, *qa1, *qa2, *qa3))
        return MoviePlot(
            movie=movie, substories=l1.substories, tinystories=tuple(tinies), frames=tuple(frame_list),
            dialogue=tuple(lines), qa=qa,
        )
