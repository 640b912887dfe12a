"""Text-only probes: at chance on a balanced QA set, and each finds the shortcut planted for it."""

from __future__ import annotations

import json
import random
import string
from collections import Counter

import pytest

from dreamframe_assets.assets.eval_scores import eval_scores_language_bias
from dreamframe_assets.core.plot import QA
from dreamframe_assets.evaluate import probes
from dreamframe_assets.evaluate.metrics import accuracy, summarize
from dreamframe_assets.resources import Workspace

from ..conftest import write_project

QTYPES = ("what", "why", "how", "where")


def _qa(movie: str, i: int, qtype: str, question: str, options: list[str], answer_index: int) -> QA:
    return QA(movie_id=movie, qa_id=f"{movie}-q{i:04d}", level="level1", qtype=qtype, question=question,
              answer=options[answer_index], options=tuple(options), answer_index=answer_index,
              evidence_frames=(0,), subject=None, source="test")


def _word(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


def _place(rng: random.Random, answer: str, others: list[str]) -> tuple[list[str], int]:
    """The answer among the others, at a uniform position."""
    i = rng.randrange(len(others) + 1)
    return others[:i] + [answer] + others[i:], i


def _acc(qas: list[QA], picks: list[int]) -> float:
    return accuracy(qas, picks)["overall"]


def balanced(movies: int = 40, per_movie: int = 60, seed: int = 0) -> list[QA]:
    """Per movie, answers drawn uniformly from a fixed candidate set, distractors from the same
    set; every fifth QA has 3 options. Nothing in the text tells the answer."""
    rng = random.Random(seed)
    qas = []
    for m in range(movies):
        movie = f"movie{m:03d}"
        candidates = [" ".join(_word(rng) for _ in range(rng.randint(1, 3))) for _ in range(12)]
        for i in range(per_movie):
            qtype = QTYPES[i % 4]
            options = rng.sample(candidates, 3 if i % 5 == 0 else 4)
            question = f"{qtype.capitalize()} is it in keyframe {i // 4 + 1}?"
            qas.append(_qa(movie, i, qtype, question, options, rng.randrange(len(options))))
    return qas


def repeated(movies: int = 20, per_movie: int = 40, seed: int = 1) -> list[QA]:
    """The right option is one of 4 strings of the movie, so it recurs; wrong options are fresh."""
    rng = random.Random(seed)
    qas = []
    for m in range(movies):
        movie = f"movie{m:03d}"
        truths = [_word(rng) for _ in range(4)]
        for i in range(per_movie):
            options, k = _place(rng, rng.choice(truths), [_word(rng) for _ in range(3)])
            qas.append(_qa(movie, i, QTYPES[i % 4], f"Question {i}?", options, k))
    return qas


def longest(movies: int = 20, per_movie: int = 40, seed: int = 2) -> list[QA]:
    """The right option has three words, the wrong ones one or two; all words fresh."""
    rng = random.Random(seed)
    qas = []
    for m in range(movies):
        movie = f"movie{m:03d}"
        for i in range(per_movie):
            right = " ".join(_word(rng) for _ in range(3))
            options, k = _place(rng, right, [" ".join(_word(rng) for _ in range(rng.randint(1, 2))) for _ in range(3)])
            qas.append(_qa(movie, i, QTYPES[i % 4], f"Question {i}?", options, k))
    return qas


def told(movies: int = 20, facts: int = 15, seed: int = 3) -> list[QA]:
    """Each fact is asked twice in its movie (two qtypes, two phrasings), so a packed conversation
    states the answer of one in the other; wrong options come from decoys that are never right."""
    rng = random.Random(seed)
    qas = []
    for m in range(movies):
        movie = f"movie{m:03d}"
        decoys = [_word(rng) for _ in range(20)]
        for j in range(facts):
            answer = _word(rng)
            for t, (qtype, text) in enumerate([("where", f"Where is item {j} kept?"),
                                               ("what", f"What place keeps item {j}?")]):
                options, k = _place(rng, answer, rng.sample(decoys, 3))
                qas.append(_qa(movie, 2 * j + t, qtype, text, options, k))
    return qas


def adjacent(movies: int = 20, frames: int = 30, seed: int = 4) -> list[QA]:
    """Keyframes come in scenes of three that share a location; one question per keyframe."""
    rng = random.Random(seed)
    qas = []
    for m in range(movies):
        movie = f"movie{m:03d}"
        places = [f"the {_word(rng)}" for _ in range(8)]
        scenes = [rng.choice(places) for _ in range(frames // 3)]
        for k in range(frames):
            answer = scenes[k // 3]
            options, i = _place(rng, answer, rng.sample([p for p in places if p != answer], 3))
            qas.append(_qa(movie, k, "location", f"Where does keyframe {k + 1} take place?", options, i))
    return qas


def tagged(shared: bool, movies: int = 20, per_movie: int = 40, seed: int = 5) -> list[QA]:
    """Every right option ends with a tag word, wrong ones with decoy tags; all options unique and
    of one length. ``shared``: one tag for the whole dataset, else a tag per movie."""
    rng = random.Random(seed)
    common, common_decoys = _word(rng), [_word(rng) for _ in range(3)]
    qas = []
    for m in range(movies):
        movie = f"movie{m:03d}"
        tag, decoys = (common, common_decoys) if shared else (_word(rng), [_word(rng) for _ in range(3)])
        for i in range(per_movie):
            options, k = _place(rng, f"{_word(rng)} {tag}", [f"{_word(rng)} {d}" for d in decoys])
            qas.append(_qa(movie, i, QTYPES[i % 4], f"Question {i}?", options, k))
    return qas


# ---------------------------------------------------------------- chance and balance
def test_chance_is_the_mean_of_one_over_the_options():
    qas = balanced(movies=2, per_movie=10)
    c = probes.chance(qas)
    assert sum(len(qa.options) == 3 for qa in qas) == 4  # QAs 0 and 5 of each movie
    assert c["overall"] == round((4 / 3 + 16 / 4) / 20, 4)
    assert c["by_qtype"]["what"] == round((1 / 3 + 2 / 4) / 3, 4)  # what: QAs 0 (3 options), 4, 8 of each
    assert set(c["by_qtype"]) == set(QTYPES)


def test_every_probe_is_at_chance_on_a_balanced_set():
    qas = balanced()
    floor = probes.chance(qas)["overall"]
    picks = probes.run_probes(qas)
    assert set(picks) == set(probes.PROBES)
    for name, p in picks.items():
        assert len(p) == len(qas) and all(0 <= x < len(qa.options) for x, qa in zip(p, qas)), name
        assert abs(_acc(qas, p) - floor) <= 0.05, (name, _acc(qas, p), floor)


def test_probes_are_deterministic():
    qas = balanced(movies=6, per_movie=20)
    assert probes.run_probes(qas) == probes.run_probes(list(qas))


# ---------------------------------------------------------------- planted shortcuts
def test_frequency_and_trained_find_a_right_option_that_recurs():
    qas = repeated()
    picks = probes.run_probes(qas)
    assert _acc(qas, picks["frequency"]) > 0.8
    assert _acc(qas, picks["trained"]) > 0.8
    assert abs(_acc(qas, picks["length"]) - 0.25) <= 0.06  # all options one length: length cannot tell


def test_length_and_trained_find_a_right_option_that_is_longest():
    qas = longest()
    picks = probes.run_probes(qas)
    assert _acc(qas, picks["length"]) > 0.8
    assert _acc(qas, picks["trained"]) > 0.8
    assert abs(_acc(qas, picks["frequency"]) - 0.25) <= 0.06


def test_conversation_finds_an_answer_stated_in_the_movies_other_qa():
    qas = told()
    picks = probes.run_probes(qas)
    assert _acc(qas, picks["conversation"]) > 0.8
    assert _acc(qas, picks["frequency"]) < 0.25  # decoys recur more than the answer: frequency is fooled


def test_conversation_copies_the_nearest_keyframe_of_the_same_question():
    qas = adjacent()
    picks = probes.run_probes(qas)
    assert _acc(qas, picks["conversation"]) > 0.6


def test_trained_never_sees_the_movie_it_answers():
    """A tag only the answered movie uses cannot be learned from other movies; one every movie
    uses can. Cross-validation by movie is what separates the two."""
    own = tagged(shared=False)
    assert abs(_acc(own, probes.run_probes(own)["trained"]) - 0.25) <= 0.05
    common = tagged(shared=True)
    assert _acc(common, probes.run_probes(common)["trained"]) > 0.8


class Fits(dict):
    """A store for the trained probe's fits."""

    def put(self, key, data, item=""):
        self[key] = data


def test_folds_are_even_and_a_movie_late_in_the_order_moves_no_other():
    names = [f"movie{m:03d}" for m in range(50)]
    folds = probes.folds_by_movie(names)
    assert sorted(Counter(folds.values()).values()) == [10] * 5
    assert sorted(probes.folds_by_movie(names[:3]).values()) == [0, 1, 2]  # fewer movies, fewer folds
    last = probes.training_order(names)[-1]
    kept = [m for m in names if m != last]
    assert probes.folds_by_movie(kept) == {m: folds[m] for m in kept}


def test_trained_fits_are_kept_and_a_kept_fit_gives_the_same_scores(monkeypatch):
    qas = repeated(movies=12, per_movie=20)
    f = probes.features(qas)
    fresh = probes.trained_scores(qas, f)
    fits = Fits()
    first = probes.trained_scores(qas, f, fits=fits)
    assert len(fits) == 5 and (first == fresh).all()
    fits.put = None  # a second run over the same data fits nothing
    assert (probes.trained_scores(qas, f, fits=fits) == fresh).all()
    del fits.put
    monkeypatch.setattr(probes, "C", 0.5)  # another setting: fitted again, never the kept weights
    assert (probes.trained_scores(qas, f, fits=fits) != fresh).any() and len(fits) == 10


def test_a_movie_removed_late_in_the_order_refits_nothing_and_an_early_one_refits(monkeypatch):
    """With training capped to the first movies of the seeded order, removing a movie late in
    that order leaves every fold's training data, and so its kept fit, as it was; changing one
    early in it does not (a kept fit is never served for other data)."""
    monkeypatch.setattr(probes, "MAX_TRAIN_OPTIONS", 8 * 20 * 4)  # about 8 movies of 20 QAs
    qas = repeated(movies=30, per_movie=20)
    names = probes.training_order(sorted({qa.movie_id for qa in qas}))
    fits = Fits()
    probes.trained_scores(qas, probes.features(qas), fits=fits)
    before = dict(fits)
    kept = [qa for qa in qas if qa.movie_id != names[-1]]
    got = probes.trained_scores(kept, probes.features(kept), fits=fits)
    assert fits == before  # no fold fitted again
    assert (got == probes.trained_scores(kept, probes.features(kept))).all()
    early = [qa for qa in qas if qa.movie_id != names[0]]
    got = probes.trained_scores(early, probes.features(early), fits=fits)
    assert len(fits) > len(before)
    assert (got == probes.trained_scores(early, probes.features(early))).all()


def test_trained_abstains_with_a_single_movie():
    qas = repeated(movies=1)
    picks = probes.run_probes(qas)
    assert picks["trained"] == [probes.ABSTAIN] * len(qas)
    assert _acc(qas, picks["frequency"]) > 0.8  # the others need no training
    m = summarize({}, qas, {})
    assert m["probes_abstained"] == ["trained"] and "trained" not in m["accuracy"]


# ---------------------------------------------------------------- metrics and the blocking check
def test_summary_reports_probes_chance_and_the_best_probes_gap():
    qas = longest()
    m = summarize({}, qas, {})
    for name in probes.PROBES:
        assert {"overall", "by_qtype", "by_level"} <= set(m["accuracy"][name])
    assert m["chance"]["overall"] == 0.25 and set(m["chance"]["by_qtype"]) == set(QTYPES)
    best = max(probes.PROBES, key=lambda n: m["accuracy"][n]["overall"])
    assert m["language_bias_probe"] == best
    assert m["language_bias_gap"] == round(m["accuracy"][best]["overall"] - 0.25, 4)
    assert set(m["language_bias_by_qtype"]) == set(QTYPES) and min(m["language_bias_by_qtype"].values()) > 0.5
    assert m["qtype_count"] == {q: 200 for q in sorted(QTYPES)}


def _check(tmp_path, qas: list[QA], **params):
    import yaml

    root = write_project(tmp_path)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["eval_scores"].update({"max_language_bias_gap": 0.05, **params})  # the default, not the tiny project's
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    folder = root / "data" / "eval_scores"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(summarize({}, qas, {})))
    return eval_scores_language_bias(workspace=Workspace(root=str(root)))


def test_the_check_fails_a_biased_dataset(tmp_path):
    result = _check(tmp_path, repeated(movies=20, per_movie=60))
    assert not result.passed
    assert "eval_scores.max_language_bias_gap 0.05" in result.description
    assert "best text-only probe" in result.description and "chance 0.250" in result.description
    assert set(result.metadata["probes_by_qtype"].value) == set(probes.PROBES)
    assert result.metadata["failing_qtypes"].value  # 300 QAs per qtype: each is held to the limit


@pytest.mark.parametrize("small", [0, 20])
def test_the_check_passes_a_balanced_dataset(tmp_path, small):
    """A balanced set passes; a biased qtype too small to measure is reported, not failed."""
    rng = random.Random(9)
    extra = []
    for i in range(small):  # "who": the longest option is right, 20 QAs in all
        options, k = _place(rng, "a much longer right answer", ["short", "brief", "tiny"])
        extra.append(_qa("movie000", 1000 + i, "who", f"Who is in keyframe {i + 1}?", options, k))
    result = _check(tmp_path, balanced() + extra)
    assert result.passed, result.description
    assert ("who" in result.description) == bool(small)


def test_the_per_qtype_limit_fails_a_qtype_with_enough_questions(tmp_path):
    """80 "who" QAs whose longest option is right: a shortcut beyond sampling noise, though
    the dataset as a whole stays within the overall limit."""
    rng = random.Random(9)
    extra = []
    for i in range(80):
        options, k = _place(rng, "a much longer right answer", ["short", "brief", "tiny"])
        extra.append(_qa(f"movie{i % 20:03d}", 1000 + i, "who", f"Who is in keyframe {i + 1}?", options, k))
    result = _check(tmp_path, balanced() + extra, max_language_bias_gap=1.0, min_probe_questions=50)
    assert not result.passed and "max_language_bias_gap_qtype 0.1" in result.description
    assert "who" in result.metadata["failing_qtypes"].value
