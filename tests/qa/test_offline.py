import random
import re
from collections import Counter

import pytest

from dreamframe_assets.core.plot import answer_key, as_row
from dreamframe_assets.core.schemas import validate
from dreamframe_assets.core.store import rows_table
from dreamframe_assets.core.vocabulary import GROUNDED_QTYPES, NUMBER_WORDS, doing_phrase
from dreamframe_assets.evaluate.chance import RandomAnswerer
from dreamframe_assets.qa.gates import reveal_pairs
from dreamframe_assets.qa.offline import (
    OfflineQAWriter,
    _same_place,
    cap_qtypes,
    describe_frame,
    person_at,
    uniform_answers,
)
from dreamframe_assets.qa.oracle import OracleAnswerer
from dreamframe_assets.story.offline import OfflineStoryWriter

THEMES = [
    "A lighthouse keeper finds a message in a bottle during a winter storm",
    "Two rival bakers must cook together for a village festival",
    "A young inventor builds a robot to save her family's farm",
    "A detective investigates a theft at a midnight train station",
    "Siblings get lost in an enchanted forest on the way to their grandmother",
    "Mountain climbers are trapped by an avalanche near the summit",
]


def write(plot, per_frame=1.0, share=1.0, seed=0):
    return list(OfflineQAWriter().write(plot, grounded_per_frame=per_frame, max_qtype_share=share, seed=seed).qas)


@pytest.fixture(scope="module")
def movies():
    writer = OfflineStoryWriter()
    return [writer.write(theme, f"m{i}", 0, 3, 4, 4) for i, theme in enumerate(THEMES)]


def test_every_qa_is_well_formed(movies):
    for plot in movies:
        qas = write(plot)
        assert len(qas) > 15
        for qa in qas:
            assert 3 <= len(qa.options) <= 4 and len({answer_key(o) for o in qa.options}) == len(qa.options), qa
            assert qa.options[qa.answer_index] == qa.answer
            assert qa.evidence_frames and all(0 <= f < len(plot.frames) for f in qa.evidence_frames)
        validate("qa", rows_table("qa", [as_row(q) for q in qas]))


def test_grounded_answers_are_what_the_frames_show(movies):
    seen = set()
    for plot in movies:
        for qa in write(plot):
            if qa.level != "grounded" or qa.qtype == "order":
                continue
            seen.add(qa.qtype)
            frame = plot.frames[qa.evidence_frames[0]]
            side = qa.source.rsplit(":", 1)[1]
            expected = {
                "count": lambda: NUMBER_WORDS[len(frame.characters) - 1],
                "location": lambda: frame.location,
                "action": lambda: doing_phrase(frame.action, frame.held_object),
                "who": lambda: plot.character(person_at(frame, side)).look,
                "colour": lambda: plot.character(person_at(frame, side)).clothing_colour,
                "speaker": lambda: plot.character(
                    next(d.speaker for d in plot.dialogue if f'"{d.text}"' in qa.question)).look,
            }[qa.qtype]()
            assert qa.answer == expected, qa
    assert set(GROUNDED_QTYPES) - {"order"} <= seen


def test_every_option_exists_in_the_same_movie(movies):
    """A wrong option is a value of the same movie, so how often it appears says nothing."""
    for plot in movies:
        values = {
            "who": {c.look for c in plot.movie.characters},
            "speaker": {c.look for c in plot.movie.characters},
            "colour": {c.clothing_colour for c in plot.movie.characters},
            "location": {f.location for f in plot.frames},
            "action": {doing_phrase(f.action, f.held_object) for f in plot.frames},
            "count": {NUMBER_WORDS[len(f.characters) - 1] for f in plot.frames},
            "order": {describe_frame(plot, f) for f in plot.frames},
        }
        for qa in write(plot):
            if qa.qtype in values:
                assert set(qa.options) <= values[qa.qtype], qa


def test_questions_name_no_look_colour_or_place_of_a_frame(movies):
    """People are named by position (grounded) or name (level); a question never states a
    look, a clothing colour or a keyframe's place that another question asks for."""
    for plot in movies:
        looks = [c.look for c in plot.movie.characters] + [c.appearance for c in plot.movie.characters]
        colours = [c.clothing_colour for c in plot.movie.characters]
        places = {f.location for f in plot.frames}
        for qa in write(plot):
            if qa.qtype == "speaker":
                continue  # quotes a line
            assert not any(look in qa.question for look in looks), qa.question
            assert not any(re.search(rf"\b{c}\b", qa.question) for c in colours), qa.question
            assert not any(p in qa.question for p in places), qa.question


def test_uniform_answers_do_not_favour_common_values():
    """A value found in every unit is no likelier to be the answer than one found in few."""
    rng = random.Random(0)
    units = [{"common": [0], **({"rare": [0]} if i % 4 == 0 else {}), **({"mid": [0]} if i % 2 else {})}
             for i in range(40)]
    answers = Counter()
    for _ in range(300):
        values, picks = uniform_answers(units, rng)
        assert values == ["common", "mid", "rare"]
        answers.update(v for v, _ in picks)
    shares = {v: n / sum(answers.values()) for v, n in answers.items()}
    assert all(abs(s - 1 / 3) < 0.05 for s in shares.values()), shares
    assert uniform_answers([{"a": [0]}, {"b": [0]}], rng) == ([], [])  # two values: no question


def test_the_overview_options_tell_the_same_events_in_other_orders(movies):
    for plot in movies:
        overview = next(qa for qa in write(plot) if qa.qtype == "overview")
        assert len(overview.options) == 4 and overview.answer.startswith("First, ")
        events = [sorted(re.split(r"; then |; and finally |^First, ", o.rstrip(".")))[1:] for o in overview.options]
        assert all(e == events[0] for e in events)  # same events, only the order differs
        picks = [int(i) for i in overview.source.split(":")[1].split(",")]
        assert picks == sorted(picks)  # the answer tells them in story order
        assert OracleAnswerer().answer_one(plot, overview) == overview.answer_index


def test_action_options_are_whole_phrases(movies):
    for plot in movies:
        for qa in write(plot):
            for option in qa.options:
                assert not re.search(r"\b(holding|carrying)\.?$", option), option  # "Zofia is holding." has no object


def test_oracle_answers_everything_and_random_is_near_chance(movies):
    qas = {plot.movie.movie_id: [qa for seed in range(3) for qa in write(plot, seed=seed)] for plot in movies}
    hits, chance, total = 0, 0.0, 0
    for plot in movies:
        mine = qas[plot.movie.movie_id]
        assert OracleAnswerer().answer(plot, mine) == [qa.answer_index for qa in mine]
        picks = RandomAnswerer(seed=1).answer(plot, mine)
        hits += sum(p == qa.answer_index for p, qa in zip(picks, mine))
        chance += sum(1 / len(qa.options) for qa in mine)
        total += len(mine)
    assert abs(hits - chance) / total < 0.04
    positions = Counter(qa.answer_index for m in qas.values() for qa in m)
    assert min(positions[i] for i in range(3)) > 0.2 * total  # the answer is not always in one slot


def test_oracle_catches_a_wrong_grounded_answer(movies):
    qa = next(q for q in write(movies[0]) if q.qtype == "count")
    wrong = (qa.answer_index + 1) % len(qa.options)
    bad = qa.__class__(**{**qa.__dict__, "answer_index": wrong, "answer": qa.options[wrong]})
    assert OracleAnswerer().answer_one(movies[0], bad) != bad.answer_index


def test_a_keyframe_answers_one_question_at_most(movies):
    for plot in movies:
        frames = Counter(qa.evidence_frames[0] for qa in write(plot)
                         if qa.level == "grounded" and qa.qtype not in ("order", "speaker"))
        assert max(frames.values()) == 1


def test_few_written_questions_reveal_another(movies):
    """What the writer produces is nearly free of reveals; the reveal gate drops the rest."""
    qas = [qa for plot in movies for qa in write(plot)]
    assert len(reveal_pairs(qas)) < 0.12 * len(qas)


def test_qtype_cap_holds_per_movie(movies):
    qas = write(movies[0], share=0.3)
    counts = Counter(qa.qtype for qa in qas)
    assert max(counts.values()) <= 0.3 * len(qas)
    assert sum(qa.qtype == "overview" for qa in qas) == 1


def test_cap_settles_for_an_even_split_when_the_cap_is_unreachable():
    rows = [{"qtype": q, "level": "grounded"} for q in "aaaabbbb"]
    assert Counter(r["qtype"] for r in cap_qtypes(rows, 0.3)) == {"a": 4, "b": 4}


def test_deterministic_per_seed(movies):
    assert write(movies[0], seed=3) == write(movies[0], seed=3)
    assert write(movies[0], seed=3) != write(movies[0], seed=4)


def test_a_movie_with_two_people_gets_no_who_colour_or_speaker_question(plot):
    """Two values make a two-way guess; a third option from outside the movie would never be right."""
    qtypes = {qa.qtype for qa in write(plot)}
    assert not qtypes & {"who", "colour", "speaker"}
    assert qtypes & {"why", "what"}


def test_level_distractors_keep_the_answer_sentence_shape(plot):
    why = next(qa for qa in write(plot) if qa.source == "substory:0:cause")
    assert why.answer == "Because a storm blew in from the north."
    wrong = [o for o in why.options if o != why.answer]
    assert all(o.startswith("Because ") for o in wrong)
    assert "Because a boat ran aground on the rocks." in wrong  # the other substory's cause


def test_wrong_options_move_to_the_place_the_question_names_with_its_preposition(plot):
    moved = _same_place(plot, "Why is Mara at the harbor place?", "Because she mends the boat at the harbor place.",
                        ["Because she watches the sea at the lighthouse place.", "Because she sits on the beach place.",
                         "Because a storm came."])
    assert moved == ["Because she watches the sea at the harbor place.", "Because she sits at the harbor place.",
                     "Because a storm came."]
