"""The graph with real model backends: tiny diffusion models built in the test."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
import yaml
from safetensors.numpy import load as load_safetensors

from dreamframe_assets.core.params import load_params
from dreamframe_assets.models import diffusion

from ..conftest import materialize, metadata, warm_copy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def diffusion_built(built_dataset, tiny_sd, tmp_path_factory):
    """Two movies with textual-inversion styles and diffusion keyframes on the tiny SD model,
    built once for this module (the sentence embeddings are the session build's)."""
    project = warm_copy(built_dataset, tmp_path_factory.mktemp("diffusion") / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["movie_plots"]["themes"] = params["movie_plots"]["themes"][:2]
    sd = {"model": str(tiny_sd), "steps": 2, "batch_size": 4}
    params["style_banks"].update(learner="textual_inversion", references=2, size=64)
    params["style_banks"]["diffusion"].update(sd)
    params["style_banks"]["textual_inversion"].update(steps=2, gradient_accumulation=1, resolution=64)
    params["keyframes"].update(renderer="diffusion", width=64, height=64)
    params["keyframes"]["diffusion"].update(sd)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("DREAMFRAME_ROOT", str(project))
        result = materialize(project)
    assert result.success
    return project


@pytest.fixture
def diffusion_project(diffusion_built, tmp_path, monkeypatch):
    """A copy of the module's diffusion build, to change."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = shutil.copytree(diffusion_built, tmp_path / "project")
    monkeypatch.setenv("DREAMFRAME_ROOT", str(root))
    return root


def test_textual_inversion_styles_and_diffusion_keyframes_through_the_graph(diffusion_project):
    root = diffusion_project
    styles = pl.read_parquet(root / "data/style_banks/styles.parquet")
    for row in styles.iter_rows(named=True):
        style = json.loads(row["params_json"])
        assert style["kind"] == "textual_inversion"
        files = list((root / "data/style_banks/embeddings" / row["movie_id"]).glob("*.safetensors"))
        assert len(files) == 1
        vectors = load_safetensors(files[0].read_bytes())
        assert vectors and all(v.size == 32 for v in vectors.values())  # the tiny CLIP width
    index = pl.read_parquet(root / "data/keyframes/keyframes.parquet")
    assert index.height == 2 * 2 * 2 * 3 and set(index["width"]) == {64}
    assert json.loads((root / "data/eval_scores/metrics.json").read_text())["counts"]["keyframes"] == 24
    # each frame's prompt is kept beside its shard (which holds keyframes only), facts first
    plots = {m: json.loads((root / f"data/movie_plots/movies/{m}.json").read_text()) for m in index["movie_id"].unique()}
    for mid in plots:
        said = json.loads((root / f"data/keyframes/prompts/{mid}.json").read_text())
        assert [r["frame_index"] for r in said] == list(range(12))
        assert all(r["prompt"].startswith("an image in <") for r in said)  # the movie's token
        assert all(r["lost"] for r in said)  # the tiny tokenizer spends a token per letter or two: all are cut

    # a second run pays for no diffusion step: every item comes from the cache
    params = load_params(root)
    pipe = diffusion.load_pipeline(params.keyframes.diffusion)
    calls = []
    hook = pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        again = materialize(root)
    finally:
        hook.remove()
    assert again.success and calls == []
    for stage in ["style_banks", "keyframes"]:
        assert metadata(again, stage)["cache_misses"] == 0
    assert metadata(again, "keyframes")["count_prompts_cut"] == 24


def test_a_changed_diffusion_knob_redraws_only_keyframes(diffusion_project):
    root = diffusion_project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["keyframes"]["diffusion"]["guidance_scale"] = 3.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    again = materialize(root, ["style_banks", "keyframes"])
    assert metadata(again, "style_banks")["cache_misses"] == 0
    assert metadata(again, "keyframes")["cache_misses"] == 2


def test_an_imported_story_uses_the_authors_style_embedding(project, tiny_sdxl, monkeypatch):
    """A <story>.pt beside <story>.json is that movie's style token, used as is (no learning)."""
    import torch

    from dreamframe_assets.story.authors import export_story
    from dreamframe_assets.story.offline import OfflineStoryWriter

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DREAMFRAME_ROOT", str(project))
    model = tiny_sdxl
    (project / "stories").mkdir()
    story = export_story(OfflineStoryWriter().write("A ferry crosses a foggy strait", "x", 0, 1, 2, 2))
    (project / "stories" / "ferry.json").write_text(json.dumps(story))
    emb, emb2 = torch.arange(32, dtype=torch.float32) / 32, -torch.arange(64, dtype=torch.float32) / 64
    torch.save({"emb": emb, "emb2": emb2}, project / "stories" / "ferry.pt")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["movie_plots"]["themes"] = []
    xl = {"model": str(model), "steps": 2, "batch_size": 4}
    params["style_banks"].update(learner="textual_inversion", references=2, size=64)
    params["style_banks"]["diffusion"].update(xl)
    params["keyframes"].update(renderer="diffusion", width=64, height=64)
    params["keyframes"]["diffusion"].update(xl)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    result = materialize(project, ["movie_plots", "style_banks", "keyframes"])
    assert result.success
    [folder] = list((project / "data/style_banks/embeddings").iterdir())
    assert folder.name.startswith("story-ferry")
    [file] = list(folder.glob("*.safetensors"))
    vectors = load_safetensors(file.read_bytes())
    assert (vectors["clip_l"].reshape(-1) == emb.numpy()).all()
    assert (vectors["clip_g"].reshape(-1) == emb2.numpy()).all()
    assert pl.read_parquet(project / "data/keyframes/keyframes.parquet").height == 4


def test_llm_writers_through_the_graph_pay_once_and_quarantine_bad_movies(project, monkeypatch):
    from ..models.test_llm import ChatServer
    from ..story.test_llm import canned

    monkeypatch.setenv("DREAMFRAME_ROOT", str(project))

    def handler(body, n):
        if "broken" in json.dumps(body["messages"]):  # this theme's level 1 never parses
            return "Sorry, I cannot help with that."
        return canned(body, n)

    with ChatServer(handler) as server:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["movie_plots"]["themes"] = [
            "A lighthouse keeper finds a message in a bottle during a winter storm",
            "A broken clock tower stops time in a small town",
        ]
        llm = {"client": "openai", "base_url": server.base_url, "model": "tiny", "concurrency": 4}
        for stage in ["movie_plots", "qa_pairs"]:
            params[stage]["writer"] = "llm"
            params[stage]["llm"].update(llm)
        params["movie_plots"].update(substories=2, tinystories=2, frames=3)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

        result = materialize(project)
        assert result.success
        md = metadata(result, "movie_plots")
        assert md["count_movies"] == 1 and md["count_quarantined"] == 1
        assert md["llm_usage"]["requests_sent"] == len([b for b in server.bodies if "qa" != b["response_format"]["json_schema"]["name"]])
        quarantine = pl.read_parquet(project / "data/movie_plots/quarantine.parquet")
        assert quarantine["step"].to_list() == ["level1"] and "broken clock tower" in quarantine["prompt"][0]
        assert metadata(result, "qa_pairs")["llm_usage"]["requests_sent"] > 0
        metrics = json.loads((project / "data/eval_scores/metrics.json").read_text())
        assert metrics["accuracy"]["oracle"]["overall"] == 1.0

        sent = len(server.bodies)
        again = materialize(project)
        assert again.success
        # the good movie is a cache hit; the quarantined one is re-parsed from cached answers
        assert len(server.bodies) == sent
        assert metadata(again, "movie_plots")["llm_usage"]["requests_sent"] == 0


def test_character_references_are_drawn_kept_and_measured(diffusion_project, tiny_sd_ip_adapter, tmp_path):
    """With an IP-Adapter, each character gets one reference image per movie, every frame of
    theirs is drawn from it, and evaluation says how alike each character's frames are."""
    from ..models.test_clip import _tiny_clip

    root = diffusion_project
    before = {p.name: p.read_bytes() for p in (root / "data/keyframes/shards").glob("*.tar")}
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["keyframes"]["ip_adapter"].update(model=str(tiny_sd_ip_adapter), subfolder="", weight_name="ip_adapter.safetensors")
    params["eval_scores"]["clip_model"] = str(_tiny_clip(tmp_path / "clip"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    again = materialize(root)
    assert again.success
    assert metadata(again, "style_banks")["cache_misses"] == 0  # the styles do not depend on it
    assert metadata(again, "keyframes")["cache_misses"] == 2
    plots = {p.stem: json.loads(p.read_text()) for p in (root / "data/movie_plots/movies").glob("*.json")}
    for mid, plot in plots.items():
        cast = sorted(c["char_id"] for c in plot["movie"]["characters"])
        assert sorted(p.stem for p in (root / "data/keyframes/references" / mid).glob("*.png")) == cast
    assert metadata(again, "keyframes")["count_character_references"] == sum(
        len(p["movie"]["characters"]) for p in plots.values())
    after = {p.name: p.read_bytes() for p in (root / "data/keyframes/shards").glob("*.tar")}
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in after)  # frames drawn anew
    identity = json.loads((root / "data/eval_scores/metrics.json").read_text())["identity_consistency_clip"]
    # one-person frames only (no detector): these small movies have 3 same-character pairs, none of two characters
    assert (identity["same_pairs"], identity["different_pairs"]) == (3, 0)
    assert -1.0 <= identity["same_character"] <= 1.0 and identity["separation"] == 0.0
