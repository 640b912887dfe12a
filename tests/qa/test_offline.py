from collections import Counter

from dreamframe_assets.core.plot import as_row
from dreamframe_assets.core.schemas import validate
from dreamframe_assets.core.store import rows_table
from dreamframe_assets.core.vocabulary import GROUNDED_QTYPES
from dreamframe_assets.evaluate.chance import RandomAnswerer
from dreamframe_assets.qa.offline import (
    OfflineQAWriter,
    cap_qtypes,
    describe_frame,
    swap_colour,
)
from dreamframe_assets.qa.oracle import OracleAnswerer


def write(plot, per_frame=3.0, share=1.0, seed=0):
    return list(OfflineQAWriter().write(plot, grounded_per_frame=per_frame, max_qtype_share=share, seed=seed).qas)


def test_every_qa_has_four_distinct_options_one_correct_and_evidence(plot):
    qas = write(plot)
    assert len(qas) > len(plot.qa)
    for qa in qas:
        assert len(qa.options) == 4 and len(set(qa.options)) == 4, qa
        assert qa.options[qa.answer_index] == qa.answer
        assert qa.evidence_frames and all(0 <= f < len(plot.frames) for f in qa.evidence_frames)
    validate("qa", rows_table("qa", [as_row(q) for q in qas]))


def test_grounded_answers_are_what_the_frames_say(plot):
    qas = {qa.qtype: qa for qa in write(plot)}
    assert set(GROUNDED_QTYPES) <= set(qas)
    count = qas["count"]
    frame = plot.frames[count.evidence_frames[0]]
    assert count.answer == ["one", "two", "three"][len(frame.characters) - 1]
    colour = qas["colour"]
    assert colour.answer == plot.character(colour.subject).clothing_colour
    assert colour.answer not in colour.question  # the question must not give it away
    loc = qas["location"]
    assert loc.answer == plot.frames[loc.evidence_frames[0]].location
    speaker = qas["speaker"]
    line = next(d for d in plot.dialogue if d.text in speaker.question)
    assert speaker.answer == plot.character(line.speaker).appearance
    assert "Mara" not in speaker.answer and "Tomas" not in speaker.answer


def test_level_distractors_keep_the_answer_sentence_shape(plot):
    why = next(qa for qa in write(plot) if qa.source == "substory:0:cause")
    assert why.answer == "Because a storm blew in from the north."
    wrong = [o for o in why.options if o != why.answer]
    assert all(o.startswith("Because ") for o in wrong)
    assert "Because a boat ran aground on the rocks." in wrong  # the other substory's cause


def test_oracle_answers_everything_and_random_is_near_chance(plot):
    qas = [qa for seed in range(40) for qa in write(plot, seed=seed)]
    oracle = OracleAnswerer().answer(plot, qas)
    assert all(pick == qa.answer_index for pick, qa in zip(oracle, qas))
    picks = RandomAnswerer(seed=1).answer(plot, qas)
    hit = sum(p == qa.answer_index for p, qa in zip(picks, qas)) / len(qas)
    assert 0.18 < hit < 0.32
    positions = Counter(qa.answer_index for qa in qas)
    assert min(positions.values()) > 0.18 * len(qas)  # the answer is not always in one slot


def test_oracle_catches_a_wrong_grounded_answer(plot):
    qa = next(q for q in write(plot) if q.qtype == "count")
    wrong = (qa.answer_index + 1) % 4
    bad = qa.__class__(**{**qa.__dict__, "answer_index": wrong, "answer": qa.options[wrong]})
    assert OracleAnswerer().answer_one(plot, bad) != bad.answer_index


def test_qtype_cap_holds_per_movie(plot):
    qas = write(plot, per_frame=3.0, share=0.3)
    counts = Counter(qa.qtype for qa in qas)
    assert max(counts.values()) <= 0.3 * len(qas)
    assert sum(qa.qtype == "overview" for qa in qas) == 1


def test_cap_settles_for_an_even_split_when_the_cap_is_unreachable():
    rows = [{"qtype": q, "level": "grounded"} for q in "aaaabbbb"]
    assert Counter(r["qtype"] for r in cap_qtypes(rows, 0.3)) == {"a": 4, "b": 4}


def test_deterministic_per_seed(plot):
    assert write(plot, seed=3) == write(plot, seed=3)
    assert write(plot, seed=3) != write(plot, seed=4)


def test_helpers(plot):
    assert swap_colour("a tall woman in red", "teal") == "a tall woman in teal"
    assert describe_frame(plot, plot.frames[1]) == "a tall woman with short grey hair in red is holding a lantern in the lighthouse place"


def test_wrong_options_move_to_the_place_the_question_names(plot):
    from dreamframe_assets.qa.offline import _same_place

    moved = _same_place(plot, "Why is Mara at the harbor place?", "Because she mends the boat at the harbor place.",
                        ["Because she watches the sea at the lighthouse place.", "Because a storm came."])
    assert moved == ["Because she watches the sea at the harbor place.", "Because a storm came."]


def test_no_option_offers_a_missing_object(plot):
    for qa in write(plot):
        assert not any(o.endswith("None.") or " None" in o for o in qa.options), qa
