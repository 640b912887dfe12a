"""Shared test fixtures: a hand-made plot, a tiny project folder, the tiny project built once
per session (``built_dataset``; tests work on copies, ``built_project``), and tiny
diffusion models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from dreamframe_assets.core.plot import (
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
from dreamframe_assets.pipeline.code import STAGES

REPO = Path(__file__).resolve().parents[1]

TINY_THEMES = [
    "A lighthouse keeper finds a message in a bottle during a winter storm",
    "Two rival bakers must cook together for a village festival",
    "A haunted manor hides the truth about a missing heir",
]


def tiny_params(themes=TINY_THEMES) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["movie_plots"].update(themes=list(themes), substories=2, tinystories=2, frames=3)
    params["style_banks"].update(references=2, size=64)
    params["keyframes"].update(width=96, height=64)
    params["executor"].update(workers=1)  # in this process, so a test's monkeypatches reach the backends
    return params


def write_project(root: Path) -> Path:
    """A project folder with tiny params (3 movies, 12 frames each)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    shutil.copy(REPO / "themes.txt", root / "themes.txt")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with tiny params (3 movies, 12 frames each), nothing built."""
    return write_project(tmp_path)


# ---------------------------------------------------------------- the graph, in process
def materialize(root, selection=None, instance=None, movies=None, retry=False):
    """Assets through Dagster in this process, as the CLI and DVC run them (one run per stage,
    its movies in one run), on the project at ``root``. One result, the runs' events merged."""
    import dagster as dg

    from dreamframe_assets.runs import materialize_stages

    instance = instance or dg.DagsterInstance.ephemeral()
    results = materialize_stages(Path(root), list(selection or STAGES), instance=instance, movies=movies, retry=retry)
    return Runs(results)


class Runs:
    """Several in-process runs read as one result (the part of the API the tests use)."""

    def __init__(self, results):
        self.results = results
        self.success = bool(results) and all(r.success for r in results)
        self.all_events = [e for r in results for e in r.all_events]

    def asset_materializations_for_node(self, node):
        return [m for r in self.results for m in r.asset_materializations_for_node(node)]

    def asset_observations_for_node(self, node):
        return [o for r in self.results for o in r.asset_observations_for_node(node)]

    def get_asset_check_evaluations(self):
        return [c for r in self.results for c in r.get_asset_check_evaluations()]


def metadata(result, asset):
    """The metadata of the asset's (last) run: its materialization's (for a per-movie asset, one
    per movie, alike) with the run's details (rows, pictures, params) that a per-movie asset
    records once, as an observation."""
    mats = result.asset_materializations_for_node(asset)
    observed = [o for o in result.asset_observations_for_node(asset) if o.partition is None]  # not a movie's version
    merged = {**(observed[-1].metadata if observed else {}), **mats[-1].metadata}
    return {k: v.value for k, v in merged.items()}


def _plain(value):
    """A metadata value as JSON: numbers, text, lists and dicts as they are, the rest as text."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (list, tuple):
        return [_plain(v) for v in value]
    if type(value) is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


BUILD_RECORD = ".build.json"  # what the session's one build reported, for the tests that check it


@pytest.fixture(scope="session")
def built_dataset(tmp_path_factory, worker_id) -> Path:
    """The tiny project built through the whole graph once per test session, whatever the
    number of xdist workers (the first to get the lock builds). Read-only: tests that change
    anything take a copy (``built_project``, ``copy_built``). ``BUILD_RECORD`` holds the
    build's check results and materialization metadata."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # this run's folder, shared by its workers
    golden = shared / "built-project"
    with FileLock(str(shared / "built-project.lock")):
        if not (golden / BUILD_RECORD).exists():
            shutil.rmtree(golden, ignore_errors=True)
            before = os.environ.get("DREAMFRAME_ROOT")
            try:
                result = materialize(write_project(golden))
            finally:
                if before is None:
                    os.environ.pop("DREAMFRAME_ROOT", None)
                else:
                    os.environ["DREAMFRAME_ROOT"] = before
            assert result.success
            record = {
                "checks": {c.check_name: c.passed for c in result.get_asset_check_evaluations()},
                "metadata": {stage: _plain(metadata(result, stage)) for stage in STAGES},
                "data_versions": {stage: result.asset_materializations_for_node(stage)[0].tags["dagster/data_version"]
                                  for stage in STAGES},
            }
            (golden / BUILD_RECORD).write_text(json.dumps(record))
    return golden


def build_record(built: Path) -> dict:
    return json.loads((built / BUILD_RECORD).read_text())


def copy_built(built: Path, dest: Path) -> Path:
    """A private copy of the built project (data, item cache, embeddings), mtimes kept."""
    shutil.copytree(built, dest, ignore=shutil.ignore_patterns(BUILD_RECORD))
    return dest


def warm_copy(built: Path, dest: Path) -> Path:
    """A fresh project (nothing built, no item cache) that shares the session build's sentence
    embeddings: building it computes every item, but no embedding model is loaded."""
    write_project(dest)
    shutil.copytree(built / ".dreamframe" / "embeddings", dest / ".dreamframe" / "embeddings")
    return dest


@pytest.fixture
def warm_project(built_dataset, tmp_path) -> Path:
    return warm_copy(built_dataset, tmp_path / "warm")


@pytest.fixture
def built_project(built_dataset, tmp_path) -> Path:
    """A copy of the session's built project that a test may change."""
    return copy_built(built_dataset, tmp_path / "built")


def make_plot() -> MoviePlot:
    """A small plot written by hand, so QA and answerer tests know every answer."""
    mid = "test-movie"
    kinds = ["lighthouse", "beach", "room", "harbor", "forest", "street", "shop", "hall",
             "mountain", "garden", "library", "market"]
    locations = tuple(Location(f"the {k} place", k) for k in kinds)
    cast = (
        Character("c0", "Mara", "a tall woman with short grey hair in red", "red"),
        Character("c1", "Tomas", "a young man with curly black hair in blue", "blue"),
    )
    movie = Movie(mid, "a test theme", "The Test", "Drama", "Mara keeps the lighthouse place. Tomas arrives by boat.",
                  "moody, misty, muted", "Dramatic", locations, cast)
    subs = (
        Substory(mid, 0, "The Storm", "the lighthouse place", "Mara sees a light at sea.",
                 "a storm blew in from the north", "a boat ran aground on the rocks"),
        Substory(mid, 1, "The Rescue", "the harbor place", "Mara and Tomas mend the boat.",
                 "a boat ran aground on the rocks", "the village learned of the wreck"),
    )
    tinys = (
        Tinystory(mid, 0, 0, "Watch", "the lighthouse place", "Mara watches the sea."),
        Tinystory(mid, 1, 0, "Mend", "the harbor place", "They mend the hull."),
    )
    frames = []
    specs = [
        (0, "the lighthouse place", "lighthouse", ("c0",), "look", "worried", None),
        (0, "the lighthouse place", "lighthouse", ("c0",), "hold", "determined", "lantern"),
        (0, "the lighthouse place", "lighthouse", ("c0", "c1"), "talk", "surprised", None),
        (1, "the harbor place", "harbor", ("c0", "c1"), "hug", "smiling", None),
        (1, "the harbor place", "harbor", ("c1",), "squat", "calm", None),
        (1, "the harbor place", "harbor", ("c1", "c0"), "walk", "laughing", None),
    ]
    for i, (s, loc, kind, chars, action, expr, obj) in enumerate(specs):
        frames.append(Frame(mid, i, s, 0, loc, kind, chars, action, expr, obj, f"In {loc}, someone is {action}."))
    dialogue = (
        DialogueLine(mid, 0, 0, "c0", "Something is out there."),
        DialogueLine(mid, 1, 2, "c1", "My boat is on the rocks!"),
        DialogueLine(mid, 2, 3, "c0", "You are safe now."),
    )
    qa = (
        PlotQA(mid, "movie", "overview", "Describe in detail the events that occur in this movie.",
               movie.overview, tuple(range(6)), "movie::overview"),
        PlotQA(mid, "level1", "why", "Why does the boat run aground?",
               "Because a storm blew in from the north.", (0, 1, 2), "substory:0:cause"),
        PlotQA(mid, "level1", "what", "What happens after the rescue?",
               "The village learned of the wreck.", (3, 4, 5), "substory:1:outcome"),
        PlotQA(mid, "level3", "where", "Where do they mend the boat?",
               "They mend it at the harbor place.", (3, 4, 5), "tinystory:1.0:scene"),
    )
    return MoviePlot(movie, subs, tinys, tuple(frames), dialogue, qa)


@pytest.fixture
def plot() -> MoviePlot:
    return make_plot()


# Tiny diffusion models, saved as a user's model is: built once per worker, shared by the
# model, render, style and graph tests.
@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    from .tiny_diffusion import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    from .tiny_diffusion import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_sd_ip_adapter(tmp_path_factory, tiny_sd) -> Path:
    from .tiny_diffusion import build_tiny_ip_adapter

    return build_tiny_ip_adapter(tmp_path_factory.mktemp("tiny-sd-ip-adapter"), tiny_sd)


@pytest.fixture(scope="session")
def tiny_sdxl_ip_adapter(tmp_path_factory, tiny_sdxl) -> Path:
    from .tiny_diffusion import build_tiny_ip_adapter

    return build_tiny_ip_adapter(tmp_path_factory.mktemp("tiny-sdxl-ip-adapter"), tiny_sdxl)


@pytest.fixture(scope="session")
def tiny_sdxl_refiner(tmp_path_factory) -> Path:
    from .tiny_diffusion import build_tiny_sdxl_refiner

    return build_tiny_sdxl_refiner(tmp_path_factory.mktemp("tiny-sdxl-refiner"))


# A tiny causal LM saved as a user's model is: built once per worker, shared by the client
# tests and the LLM writer tests (so each worker loads it once).
@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer Llama with a 200-token BPE vocabulary, random weights, saved like a hub model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    corpus = [
        "the keeper walks to the old lighthouse and looks at the sea",
        "a storm comes in from the north and the boat runs aground on the rocks",
        "she holds a lantern and talks with the young man by the harbor",
        "they sit together in the kitchen and share an old memory",
    ] * 20
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>", "</s>"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = (
        "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}<s> assistant : {% endif %}"
    )
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, initializer_range=0.5,
    )
    model = transformers.LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llm")
    fast.save_pretrained(path)
    model.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _no_stage_left_over():
    """A test that runs a stage in this worker leaves the worker working for that stage, and the
    next load there would let go of other stages' models: tests share their models, so each
    test starts outside any stage."""
    yield
    from dreamframe_assets.models import device

    device._STAGE.clear()
