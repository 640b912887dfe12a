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


def test_a_stage_lets_go_of_the_models_only_other_stages_use_before_it_loads_its_own(clean):
    loads = []

    def load(name):
        loads.append(name)
        return Model()

    outside = device.load_once(("notebook",), lambda: load("notebook"))  # loaded outside any stage: kept
    device.enter_stage("style_banks")
    pipe = weakref.ref(device.load_once(("pipe",), lambda: load("pipe"), stages={"style_banks", "keyframes"}))
    mine = weakref.ref(device.load_once(("learner",), lambda: load("learner")))  # the current stage's alone
    device.enter_stage("keyframes")
    gc.collect()
    assert mine() is not None  # nothing loaded yet for keyframes: nothing let go
    assert device.load_once(("pipe",), lambda: load("pipe"), stages={"style_banks", "keyframes"}) is pipe()
    assert mine() is not None  # a cache hit lets nothing go either
    device.load_once(("renderer-extra",), lambda: load("renderer-extra"))
    gc.collect()
    assert mine() is None and pipe() is not None  # the learner went; the shared pipeline stays

    device.enter_stage("qa_pairs")
    embedder = weakref.ref(device.load_once(("embedder",), lambda: load("embedder"), stages=device.READERS))
    gc.collect()
    assert pipe() is None and embedder() is not None
    device.enter_stage("eval_scores")
    assert device.release_unused() == 0 and embedder() is not None
    assert device.load_once(("notebook",), lambda: load("notebook")) is outside
    assert loads == ["notebook", "pipe", "learner", "renderer-extra", "embedder"]  # nothing was loaded twice
