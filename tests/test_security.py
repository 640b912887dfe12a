"""What the code never does with files and networks it does not control.

The package source is read (ast) for the calls that run code hidden in a file or a
string (unpickling, unsafe YAML, remote model code, a shell) or that open a server
to every interface; the loaders are then given files built to run code, and must
refuse them in one line without running anything.
"""

from __future__ import annotations

import ast
import os
import pickle
import shlex
import shutil
from pathlib import Path

import pytest

from dreamframe_assets.core.params import ExecutorParams, StyleBanksParams
from dreamframe_assets.pipeline.executor import LOOPBACK, ray_init_kwargs

from .conftest import REPO, make_plot

PACKAGE = REPO / "dreamframe_assets"
SOURCES = sorted(PACKAGE.rglob("*.py"))
PICKLERS = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve"}
LOOPBACKS = {"127.0.0.1", "localhost", "::1"}
HOST_KEYWORDS = {"host", "hostname", "dashboard_host", "bind_address", "listen_address", "server_name"}
NOT_WEIGHTS = ("Tokenizer", "TokenizerFast", "Processor", "ImageProcessor", "FeatureExtractor", "Config", "Scheduler")


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path.name}:{node.lineno}"


def _name(node: ast.AST) -> str:
    """``a.b.c`` for a name or an attribute chain; ``.c`` for an attribute of anything else
    (``f(x).c``); "" for the rest."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    return tree, [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _problems(path: Path) -> list[str]:
    """Every call or import in one source file that could run code from a file, a string or the network."""
    tree, calls = _calls(path)
    out = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        for module in modules:
            if module.split(".")[0] in PICKLERS:
                out.append(f"{_where(path, node)}: imports {module} (unpickling a file can run any code)")
        if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            out.append(f"{_where(path, node)}: torch's load imported by name (call torch.load(..., weights_only=True))")
    for call in calls:
        name = _name(call.func)
        here = _where(path, call)
        if name == "torch.load" and not _is_const(_keyword(call, "weights_only"), True):
            out.append(f"{here}: torch.load without weights_only=True")
        allow = _keyword(call, "allow_pickle")
        if allow is not None and not _is_const(allow, False):
            out.append(f"{here}: allow_pickle is not False")
        remote = _keyword(call, "trust_remote_code")
        if remote is not None and not _is_const(remote, False):
            out.append(f"{here}: trust_remote_code is not False")
        shell = _keyword(call, "shell")
        if shell is not None and not _is_const(shell, False):
            out.append(f"{here}: shell is not False")
        if name in ("os.system", "os.popen", "eval", "exec"):
            out.append(f"{here}: {name} runs a string as code")
        if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
            out.append(f"{here}: {name}")
        if name in ("yaml.load", "yaml.load_all"):
            loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
            if _name(loader) not in ("yaml.SafeLoader", "yaml.CSafeLoader", "SafeLoader", "CSafeLoader"):
                out.append(f"{here}: {name} without Loader=yaml.SafeLoader")
        if name.endswith(".extractall") and not isinstance(_keyword(call, "filter"), ast.Constant):
            out.append(f"{here}: {name} without filter='data' (a member named ../x lands outside)")
    return out


def _weights_problems(path: Path) -> list[str]:
    """Every ``from_pretrained`` of weights (not a tokenizer, processor, config or scheduler)
    that does not ask for safetensors: a .bin or .pt checkpoint is a pickle."""
    _, calls = _calls(path)
    out = []
    for call in calls:
        name = _name(call.func)
        if name.endswith(".from_pretrained") and not name.rsplit(".", 2)[-2].endswith(NOT_WEIGHTS):
            if not _is_const(_keyword(call, "use_safetensors"), True):
                out.append(f"{_where(path, call)}: {name} without use_safetensors=True")
    return out


def test_no_source_unpickles_runs_remote_code_or_a_shell():
    problems = [p for path in SOURCES for p in _problems(path)]
    assert not problems, "\n".join(problems)


def test_model_weights_load_from_safetensors_only():
    problems = [p for path in SOURCES for p in _weights_problems(path)]
    assert not problems, "\n".join(problems)


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The rules above on a file that breaks each of them (so a rule that matches nothing fails here)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nfrom joblib import load\nfrom torch import load\nimport numpy as np, subprocess, torch, yaml\n"
        "torch.load('x.pt')\ntorch.load('x.pt', weights_only=False)\nnp.load('x.npy', allow_pickle=True)\n"
        "AutoModel.from_pretrained('m', trust_remote_code=True)\nsubprocess.run('ls', shell=True)\n"
        "yaml.load(s)\nyaml.load(s, Loader=yaml.Loader)\nyaml.unsafe_load(s)\ntarfile.open('t').extractall('d')\n"
        "os.system('ls')\neval(s)\n"
        "torch.load('x.pt', weights_only=True)\nyaml.load(s, Loader=yaml.SafeLoader)\nsubprocess.run(['ls'])\n"
        "AutoTokenizer.from_pretrained('m')\nPipe.from_pretrained('m', use_safetensors=True)\nm.eval()\n")

    def lines(problems):
        return sorted(int(p.split(": ", 1)[0].rsplit(":", 1)[1]) for p in problems)

    assert lines(_problems(bad)) == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert lines(_weights_problems(bad)) == [8]


# ---------------------------------------------------------------- listeners
def test_no_server_listens_beyond_this_machine_by_default():
    problems = []
    for path in SOURCES:
        tree, calls = _calls(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in ("0.0.0.0", "::"):
                problems.append(f"{_where(path, node)}: {node.value!r} (every interface)")
        for call in calls:
            for k in call.keywords:
                if k.arg in HOST_KEYWORDS and isinstance(k.value, ast.Constant) and k.value.value not in LOOPBACKS:
                    problems.append(f"{_where(path, call)}: {k.arg}={k.value.value!r}")
    assert not problems, "\n".join(problems)
    ui = next(line for line in (REPO / "Makefile").read_text().splitlines() if "dagster dev" in line)
    assert "-h 127.0.0.1" in ui, ui  # `make ui`: the webserver on loopback


def test_a_local_ray_cluster_starts_no_dashboard_and_binds_loopback():
    local = ray_init_kwargs(ExecutorParams(kind="ray", workers=2))
    assert local["include_dashboard"] is False and local["dashboard_host"] == LOOPBACK == "127.0.0.1"
    assert local["num_cpus"] == 2 and "address" not in local
    assert "0.0.0.0" not in map(str, local.values())
    joined = ray_init_kwargs(ExecutorParams(kind="ray", address="ray://head:10001"))
    assert joined == {"address": "ray://head:10001", "log_to_driver": False}  # the cluster's own settings


# ---------------------------------------------------------------- files built to run code
class _RunsCode:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _malicious(kind: str, path: Path, marker: Path) -> Path:
    import torch

    payload = {"emb": _RunsCode(f"touch {shlex.quote(str(marker))}"), "emb2": torch.zeros(4)}
    if kind == "torch.save":  # the zip format torch writes, data.pkl inside
        torch.save(payload, path)
    else:  # a bare pickle, as older torch wrote it
        path.write_bytes(pickle.dumps(payload, protocol=2))
    return path


@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
def test_an_authors_embedding_that_would_run_code_is_refused(tmp_path, kind):
    pytest.importorskip("torch")
    from dreamframe_assets.models.diffusion import load_authors_embedding
    from dreamframe_assets.style.textual_inversion import TextualInversionLearner

    marker = tmp_path / "ran"
    pt = _malicious(kind, tmp_path / "story.pt", marker)
    with pytest.raises(ValueError) as info:
        load_authors_embedding(pt, "<df-story>", "Cinematic")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{pt}: refused: not a torch file of tensors alone"), message
    assert "GLOBAL posix.system" in message or kind == "pickle"
    # the same file handed to the style learner as a movie's embedding: refused before any model loads
    plot = make_plot()
    learner = TextualInversionLearner(StyleBanksParams(learner="textual_inversion"), imported={plot.movie.movie_id: pt})
    with pytest.raises(ValueError, match=f"^{pt}: refused"):
        learner.learn(plot.movie, references=1, size=64, seed=0)
    assert not marker.exists(), "the file's code ran"


def test_an_authors_embedding_of_tensors_loads(tmp_path):
    torch = pytest.importorskip("torch")
    from dreamframe_assets.models.diffusion import load_authors_embedding

    pt = tmp_path / "story.pt"
    torch.save({"emb": torch.arange(4.0), "emb2": torch.ones(1, 6)}, pt)
    style = load_authors_embedding(pt, "<df-story>", "Cinematic")
    assert style.embeddings["clip_l"].tolist() == [0, 1, 2, 3] and style.embeddings["clip_g"].shape == (6,)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"junk\.pt: refused: not a torch file of tensors alone"):
        load_authors_embedding(tmp_path / "junk.pt", "<df-story>", "Cinematic")
    (tmp_path / "cut.pt").write_bytes(pt.read_bytes()[:200])  # a torch file cut short
    with pytest.raises(ValueError, match=r"cut\.pt: cannot be read as a torch file of tensors \(.+\)$") as info:
        load_authors_embedding(tmp_path / "cut.pt", "<df-story>", "Cinematic")
    assert "\n" not in str(info.value)


def _weights_as_pickle(folder: Path) -> None:
    """Every safetensors file of a saved model replaced by the pickled checkpoint of the same weights."""
    import torch
    from safetensors.torch import load_file

    names = {"model.safetensors": "pytorch_model.bin",
             "diffusion_pytorch_model.safetensors": "diffusion_pytorch_model.bin"}
    for path in list(folder.rglob("*.safetensors")):
        torch.save(load_file(path), path.with_name(names.get(path.name, path.stem + ".bin")))
        path.unlink()


def test_a_clip_model_saved_as_a_pickle_is_refused(tmp_path):
    pytest.importorskip("transformers")
    from dreamframe_assets.models.clip import ClipEmbedder

    from .models.test_clip import _tiny_clip

    folder = _tiny_clip(tmp_path / "clip")
    _weights_as_pickle(folder)
    with pytest.raises(OSError, match="safetensors"):
        ClipEmbedder(str(folder), device="cpu").texts(["a photo"])


def test_a_diffusion_model_saved_as_a_pickle_is_refused(tiny_sd, tmp_path, monkeypatch):
    from dreamframe_assets.models.diffusion import load_pipeline

    from .tiny_diffusion import dparams

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = Path(shutil.copytree(tiny_sd, tmp_path / "sd"))
    _weights_as_pickle(folder)
    with pytest.raises((OSError, EnvironmentError, ValueError), match="safetensors"):
        load_pipeline(dparams(folder))
