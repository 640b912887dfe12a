"""Identity consistency: views of one character alike, of different characters apart."""

from __future__ import annotations

import dataclasses

import numpy as np

from dreamframe_assets.evaluate.identity import (
    character_views,
    crop,
    identity_consistency,
    identity_pairs,
    movie_identity,
)
from dreamframe_assets.evaluate.metrics import movie_facts, movie_scores, summarize

from ..conftest import make_plot

COLOURS = {"c0": (200, 30, 30), "c1": (30, 30, 200)}


class MeanColourClip:
    """Stands in for CLIP's image encoder: an image's unit-length mean colour (and a texts() for retrieval)."""

    def images(self, images):
        rows = np.array([np.asarray(img, dtype=np.float64).reshape(-1, 3).mean(0) for img in images])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def texts(self, texts):
        return np.ones((len(texts), 3)) / np.sqrt(3)


class HalvesDetector:
    """Finds one person per vertical half of a frame whose halves differ (as drawn below), else one."""

    def people(self, images):
        out = []
        for img in images:
            h, w = img.shape[:2]
            left, right = img[:, : w // 2].mean((0, 1)), img[:, w // 2:].mean((0, 1))
            out.append([(0.0, 0.0, w / 2, h), (w / 2, 0.0, float(w), h)] if np.abs(left - right).max() > 20
                       else [(0.0, 0.0, float(w), h)])
        return out


def _drawn(plot, look=COLOURS, seed=0):
    """Frames in which each character is a patch of their colour, left to right, on grey noise."""
    rng = np.random.default_rng(seed)
    images = []
    for frame in plot.frames:
        img = rng.integers(100, 140, (32, 64, 3)).astype(np.uint8)
        for i, c in enumerate(frame.characters):
            part = 64 // len(frame.characters)
            img[:, i * part:(i + 1) * part] = np.clip(np.array(look[c]) + rng.integers(-10, 10, 3), 0, 255)
        images.append(img)
    return images


def test_the_same_character_looks_alike_and_others_do_not():
    plot = make_plot()  # frames: c0, c0, c0+c1, c0+c1, c1, c1+c0
    clip = MeanColourClip()
    images = _drawn(plot)
    pairs = movie_identity(plot, images, clip.images(images), clip)
    # one-person frames only: c0 in frames 0 and 1, c1 in frame 4 -> 1 same pair, 2 different pairs
    assert pairs["same"][1] == 1 and pairs["different"][1] == 2
    result = identity_consistency([pairs])
    assert result["same_character"] > 0.99 and result["different_characters"] < 0.5
    assert result["separation"] > 0.5

    # a character drawn as someone else in one of their frames: the separation falls
    lost = list(images)
    lost[1] = _drawn(dataclasses.replace(plot, frames=(plot.frames[4],)))[0]  # c0's frame shows c1's look
    worse = identity_consistency([movie_identity(plot, lost, clip.images(lost), clip)])
    assert worse["separation"] < result["separation"] - 0.3


def test_a_person_detector_crops_every_frame_matched_left_to_right():
    plot = make_plot()
    clip = MeanColourClip()
    images = _drawn(plot)
    views = character_views(plot, images, HalvesDetector())
    assert [(c, k) for c, k, _ in views] == [("c0", 0), ("c0", 1), ("c0", 2), ("c1", 2), ("c0", 3), ("c1", 3),
                                               ("c1", 4), ("c1", 5), ("c0", 5)]
    assert all(box is not None for _, _, box in views)
    pairs = movie_identity(plot, images, clip.images(images), clip, HalvesDetector())
    within_frames = 3  # frames 2, 3 and 5 give two views each: never paired with each other
    assert pairs["same"][1] + pairs["different"][1] == len(views) * (len(views) - 1) // 2 - within_frames
    assert identity_consistency([pairs])["separation"] > 0.5

    class Nobody:  # a detector that finds no one (or a wrong count): the frame is left out, not guessed
        def people(self, images):
            return [[] for _ in images]

    assert character_views(plot, images, Nobody()) == []
    assert movie_identity(plot, images, clip.images(images), clip, Nobody()) == {"same": [0.0, 0], "different": [0.0, 0]}


def test_a_movie_without_one_person_frames_gives_no_pairs_and_no_error():
    import dataclasses as dc

    plot = make_plot()
    crowded = dc.replace(plot, frames=tuple(dc.replace(f, characters=("c0", "c1")) for f in plot.frames))
    images = _drawn(crowded)
    clip = MeanColourClip()
    assert movie_identity(crowded, images, clip.images(images), clip) == {"same": [0.0, 0], "different": [0.0, 0]}


def test_sums_add_up_across_movies_and_crops_stay_inside_the_frame():
    a = identity_pairs(["x", "x", "y"], np.eye(3)[[0, 0, 1]])
    assert a == {"same": [1.0, 1], "different": [0.0, 2]}
    b = identity_pairs(["z"], np.eye(3)[[2]])
    assert b == {"same": [0.0, 0], "different": [0.0, 0]}
    assert identity_consistency([a, b, a]) == {"same_character": 1.0, "different_characters": 0.0, "separation": 1.0,
                                               "same_pairs": 2, "different_pairs": 4}
    assert identity_consistency([])["separation"] == 0.0
    assert identity_pairs(["x", "x", "y"], np.eye(3)[[0, 0, 1]], frames=[0, 0, 1]) == {"same": [0.0, 0],
                                                                                          "different": [0.0, 2]}
    image = np.zeros((10, 20, 3), np.uint8)
    assert crop(image, (-5.0, -5.0, 30.0, 30.0)).shape == (10, 20, 3)
    assert crop(image, (19.7, 9.9, 19.8, 9.9)).shape == (1, 1, 3)
    assert crop(np.zeros((40, 40, 3), np.uint8), (10.0, 5.0, 20.0, 35.0)).shape == (30, 30, 3)  # squared


def test_evaluation_reports_identity_consistency_with_clip():
    plot = make_plot()
    images = _drawn(plot)
    scores = {plot.movie.movie_id: movie_scores(plot, [], images, [], clip=MeanColourClip())}
    metrics = summarize({plot.movie.movie_id: movie_facts(plot)}, [], scores)
    assert metrics["identity_consistency_clip"]["separation"] > 0.5
    assert "identity_consistency_clip" not in summarize({plot.movie.movie_id: movie_facts(plot)}, [],
                                                        {plot.movie.movie_id: movie_scores(plot, [], images, [])})
