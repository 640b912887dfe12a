import numpy as np

from dreamframe_assets.core.plot import QA
from dreamframe_assets.evaluate.chance import RandomAnswerer
from dreamframe_assets.evaluate.metrics import (
    accuracy,
    movie_facts,
    movie_scores,
    style_consistency,
    style_descriptor,
    summarize,
)
from dreamframe_assets.qa.offline import OfflineQAWriter
from dreamframe_assets.qa.oracle import OracleAnswerer


def qa(qtype: str, answer_index: int, level: str = "grounded") -> QA:
    return QA("m", f"q{qtype}{answer_index}", level, qtype, "?", "a", ("a", "b", "c", "d"), answer_index, (0,), None, "x")


def test_accuracy_by_hand():
    qas = [qa("count", 0), qa("count", 1), qa("who", 2), qa("why", 3, level="level1")]
    result = accuracy(qas, [0, 0, 2, 3])
    assert result["overall"] == 0.75
    assert result["by_qtype"] == {"why": 1.0, "who": 1.0, "count": 0.5}
    assert result["by_level"] == {"grounded": 0.6667, "level1": 1.0}


def _movie(rng, base, noise, n=6):
    images = [np.clip(rng.normal(base, noise, (32, 32, 3)), 0, 255).astype(np.uint8) for _ in range(n)]
    return [style_descriptor(img) for img in images]


def test_style_consistency_separates_movies_of_different_looks():
    rng = np.random.default_rng(0)
    frames = {"warm": _movie(rng, (200, 120, 40), 10), "cold": _movie(rng, (40, 90, 200), 30)}
    sc = style_consistency(frames)
    assert sc["within_movie"] > sc["across_movies"] + 0.3
    assert sc["separation"] == round(sc["within_movie"] - sc["across_movies"], 4)
    same = style_consistency({"a": frames["warm"][:3], "b": frames["warm"][3:]})
    assert abs(same["separation"]) < 0.05


def test_movie_scores_and_summary_count_and_answer(plot):
    qas = list(OfflineQAWriter().write(plot, 2.0, 0.3, 0).qas)
    frames = [np.zeros((8, 8, 3), np.uint8)] * len(plot.frames)
    scores = {plot.movie.movie_id: movie_scores(plot, qas, frames, [RandomAnswerer(), OracleAnswerer()])}
    m = summarize({plot.movie.movie_id: movie_facts(plot)}, qas, scores)
    assert m["counts"] == {"movies": 1, "frames": 6, "keyframes": 6, "qa_pairs": len(qas), "dialogue_lines": 3}
    assert m["accuracy"]["oracle"]["overall"] == 1.0
    assert abs(sum(m["qtype_share"].values()) - 1) < 1e-3
    assert max(m["qtype_share"].values()) <= max(0.3, 1 / len(m["qtype_share"])) + 1e-9  # an even split when the cap cannot be met
