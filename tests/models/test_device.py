"""Models loaded once per process, and let go when a stage that does not use them starts."""

from __future__ import annotations

import gc
import weakref

import pytest

from dreamframe_assets.models import device


class Model:
    """Stands in for a loaded model: something whose memory is back once nothing holds it."""


@pytest.fixture
def clean(monkeypatch):
    monkeypatch.setattr(device, "_LOADED", {})
    monkeypatch.setattr(device, "_USED_BY", {})
    monkeypatch.setattr(device, "_STAGE", [])


def test_a_stage_lets_go_of_the_models_only_other_stages_use(clean):
    loads = []

    def load(name):
        loads.append(name)
        return Model()

    outside = device.load_once(("notebook",), lambda: load("notebook"))  # loaded outside any stage: kept
    device.enter_stage("style_banks")
    pipe = weakref.ref(device.load_once(("pipe",), lambda: load("pipe"), stages={"style_banks", "keyframes"}))
    mine = weakref.ref(device.load_once(("learner",), lambda: load("learner")))  # the current stage's alone
    assert device.enter_stage("keyframes") == 1  # the learner goes; the shared pipeline stays
    gc.collect()
    assert mine() is None and pipe() is not None
    assert device.load_once(("pipe",), lambda: load("pipe"), stages={"style_banks", "keyframes"}) is pipe()
    assert device.enter_stage("keyframes") == 0  # the same stage again: nothing to do
    embedder = weakref.ref(device.load_once(("embedder",), lambda: load("embedder"), stages=device.READERS))
    assert device.enter_stage("qa_pairs") == 1
    gc.collect()
    assert pipe() is None and embedder() is not None
    assert device.enter_stage("eval_scores") == 0 and embedder() is not None
    assert device.load_once(("notebook",), lambda: load("notebook")) is outside
    assert loads == ["notebook", "pipe", "learner", "embedder"]  # nothing was loaded twice
