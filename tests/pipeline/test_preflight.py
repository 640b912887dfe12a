"""Preflight: a chosen backend's server must answer and its model must be on this machine,
checked before any work, with errors that name the params key and its value.

Servers are loopback HTTP servers started here; the Hugging Face cache is an empty
folder (or one holding a fake snapshot), so nothing is downloaded.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub.constants
import pytest

from dreamframe_assets.core.params import Params, ParamsError, load_params, parse_params
from dreamframe_assets.pipeline.backends import preflight

from ..conftest import REPO


class AnyServer:
    """Answers every GET with 404 (still an HTTP answer) and records its path and headers."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append((self.path, dict(self.headers)))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "AnyServer":
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face cache of this test's own."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def no_network(monkeypatch) -> None:
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("preflight opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def params(**groups) -> Params:
    return parse_params(groups)


def error(p: Params, root: Path) -> str:
    with pytest.raises(ParamsError) as err:
        preflight(p, root)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_offline_defaults_pass_without_the_network(tmp_path: Path, no_network):
    preflight(Params(), tmp_path)
    preflight(load_params(REPO), REPO)  # the shipped params.yaml


def test_a_server_that_is_down_is_named(tmp_path: Path):
    url = closed_port_url()
    message = error(params(movie_plots={"writer": "llm", "llm": {"base_url": url}}), tmp_path)
    assert message.startswith("movie_plots.llm.base_url:") and url in message


def test_a_server_that_answers_passes(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DREAMFRAME_TEST_KEY", "sk-local")
    with AnyServer() as server:
        llm = {"base_url": server.base_url, "api_key_env": "DREAMFRAME_TEST_KEY"}
        preflight(params(qa_pairs={"writer": "llm", "llm": llm},
                         eval_scores={"answerers": ["random", "blind"], "blind": {"backend": "llm", "llm": llm}}),
                  tmp_path)
    [(path, headers)] = server.requests  # one server, asked once
    assert path == "/v1/models" and headers["Authorization"] == "Bearer sk-local"


def test_unused_servers_are_not_asked(tmp_path: Path, no_network):
    url = closed_port_url()
    preflight(params(movie_plots={"llm": {"base_url": url}},  # writer: offline
                     eval_scores={"blind": {"backend": "llm", "llm": {"base_url": url}}, "answerers": ["random"]}),
              tmp_path)


def test_key_rules_hold_before_any_request(tmp_path: Path, monkeypatch, no_network):
    monkeypatch.setenv("DREAMFRAME_TEST_KEY", "sk-planted-77")
    llm = {"base_url": "http://192.0.2.10:8000/v1", "api_key_env": "DREAMFRAME_TEST_KEY"}
    message = error(params(qa_pairs={"writer": "llm", "llm": llm}), tmp_path)
    assert "qa_pairs.llm.api_key_env" in message and llm["base_url"] in message and "sk-planted-77" not in message
    monkeypatch.delenv("DREAMFRAME_TEST_KEY")
    message = error(params(qa_pairs={"writer": "llm", "llm": {**llm, "base_url": "https://api.example.com/v1"}}), tmp_path)
    assert "qa_pairs.llm.api_key_env" in message and "DREAMFRAME_TEST_KEY" in message


@pytest.mark.parametrize("groups, key", [
    ({"keyframes": {"renderer": "diffusion", "diffusion": {"model": "./models/my-sd"}}}, "keyframes.diffusion.model"),
    ({"style_banks": {"learner": "textual_inversion", "diffusion": {"model": "/no/such/sdxl"}}},
     "style_banks.diffusion.model"),
    ({"movie_plots": {"writer": "llm", "llm": {"client": "transformers", "model": "~/no-such-llm"}}},
     "movie_plots.llm.model"),
    ({"eval_scores": {"answerers": ["vlm"], "vlm": {"model": "../no-such-vlm"}}}, "eval_scores.vlm.model"),
    ({"eval_scores": {"clip_model": "./clip"}}, "eval_scores.clip_model"),
    ({"qa_pairs": {"embedder": {"model": "./embedder"}}}, "qa_pairs.embedder.model"),
])
def test_a_missing_model_folder_is_named(tmp_path: Path, no_network, groups, key):
    message = error(params(**groups), tmp_path)
    assert message.startswith(f"{key}:") and "is not a folder" in message


def test_folders_are_read_from_the_project(tmp_path: Path, no_network):
    (tmp_path / "models" / "my-sd").mkdir(parents=True)
    (tmp_path / "models" / "refiner").mkdir()
    preflight(params(keyframes={"renderer": "diffusion",
                                "diffusion": {"model": "./models/my-sd", "refiner": "models/refiner"}}), tmp_path)
    message = error(params(keyframes={"renderer": "diffusion",
                                      "diffusion": {"model": "./models/my-sd", "refiner": "models/gone"}}), tmp_path)
    assert message.startswith("keyframes.diffusion.refiner:") and "'models/gone'" in message


def test_hub_ids_must_be_in_the_cache(tmp_path: Path, hf_cache: Path, no_network):
    wanted = params(eval_scores={"embedder": {"model": "acme/tiny-embedder"}})
    message = error(wanted, tmp_path)
    assert message.startswith("eval_scores.embedder.model:") and "'acme/tiny-embedder'" in message
    assert "not in the Hugging Face cache" in message
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_cache / "models--acme--tiny-embedder"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    preflight(wanted, tmp_path)


def test_only_the_stages_about_to_run_are_checked_and_a_shared_server_once(tmp_path: Path):
    url = closed_port_url()
    both = params(movie_plots={"writer": "llm", "llm": {"base_url": url}},
                  qa_pairs={"writer": "llm", "llm": {"base_url": url}})
    preflight(both, tmp_path, stages=["style_banks", "keyframes", "eval_scores"])  # neither uses it
    with pytest.raises(ParamsError, match=r"^qa_pairs\.llm\.base_url: cannot reach"):
        preflight(both, tmp_path, stages=["qa_pairs"])


def test_a_base_url_with_credentials_or_a_proxy_in_the_environment(tmp_path: Path, monkeypatch):
    """Credentials in the URL would be printed and kept in cache keys: refused. A proxy named by
    the environment never sees the request: it goes to base_url itself."""
    message = error(params(qa_pairs={"writer": "llm", "llm": {"base_url": "https://user:pw@example.com/v1"}}), tmp_path)
    assert message.startswith("qa_pairs.llm.base_url:") and "pw" not in message
    monkeypatch.setenv("HTTP_PROXY", closed_port_url().removesuffix("/v1"))
    monkeypatch.setenv("ALL_PROXY", closed_port_url().removesuffix("/v1"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    with AnyServer() as server:
        preflight(params(movie_plots={"writer": "llm", "llm": {"base_url": server.base_url}}), tmp_path)
        assert [path for path, _ in server.requests] == ["/v1/models"]


def test_the_pixel_verifier_is_refused_for_diffusion_frames():
    from dreamframe_assets.core.params import Params, ParamsError
    from dreamframe_assets.pipeline.backends import check_names

    wrong = Params.model_validate({"keyframes": {"renderer": "diffusion"}, "qa_pairs": {"faithfulness": {"verifiers": ["pixel"]}}})
    with pytest.raises(ParamsError, match=r"^qa_pairs\.faithfulness\.verifiers: pixel reads"):
        check_names(wrong)
    check_names(Params.model_validate({"keyframes": {"renderer": "diffusion"}}))  # auto: no pixel


@pytest.mark.parametrize("given, says", [
    ({"keyframes": {"ip_adapter": {"model": "h94/IP-Adapter"}}}, r"^keyframes\.ip_adapter\.model: character references need keyframes\.renderer: diffusion"),
    ({"keyframes": {"renderer": "diffusion", "ip_adapter": {"model": "h94/IP-Adapter", "weight_name": "ip-adapter_sd15.bin"}}},
     r"^keyframes\.ip_adapter\.weight_name: 'ip-adapter_sd15\.bin' is not a \.safetensors file"),
    ({"keyframes": {"renderer": "diffusion", "ip_adapter": {"model": "x", "reference_prompt": "a {person} alone"}}},
     r"^keyframes\.ip_adapter\.reference_prompt: 'a \{person\} alone' may name \{appearance\} only"),
    ({"eval_scores": {"person_detector": "facebook/detr-resnet-50"}}, r"^eval_scores\.person_detector: .* set eval_scores\.clip_model"),
])
def test_character_references_and_the_person_detector_are_checked_before_any_work(given, says):
    from dreamframe_assets.core.params import Params, ParamsError
    from dreamframe_assets.pipeline.backends import check_names

    with pytest.raises(ParamsError, match=says):
        check_names(Params.model_validate(given))


def test_preflight_looks_for_the_ip_adapter_and_the_detector(tmp_path: Path):
    message = error(params(keyframes={"renderer": "diffusion", "diffusion": {"model": str(tmp_path)},
                                      "ip_adapter": {"model": "./no-such-adapter"}}), tmp_path)
    assert message.startswith("keyframes.ip_adapter.model: './no-such-adapter' is not a folder")
    message = error(params(eval_scores={"clip_model": str(tmp_path), "person_detector": "./no-such-detector"}), tmp_path)
    assert message.startswith("eval_scores.person_detector: './no-such-detector' is not a folder")
