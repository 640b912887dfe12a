"""An API key comes from the environment and goes to its server only: it is in no file a
run writes (data, caches, logs, the Dagster instance, exports) and in nothing it prints."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest
import yaml

from .conftest import warm_copy
from .faults import DREAMFRAME, env
from .models.test_llm import ChatServer
from .story.test_llm import canned

pytestmark = pytest.mark.integration


def test_a_planted_key_reaches_its_server_and_nothing_else(built_dataset, tmp_path):
    key = "sk-planted-" + secrets.token_hex(16)
    root = warm_copy(built_dataset, tmp_path / "project")

    def handler(body, n):
        if "broken" in json.dumps(body["messages"]):  # a server that quotes the key back in a refusal
            return f"Sorry, the key {key} may not ask for that."
        return canned(body, n)

    with ChatServer(handler) as server:
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["movie_plots"]["themes"] = ["A lighthouse keeper finds a message in a bottle during a winter storm",
                                           "A broken clock tower stops time in a small town"]
        params["movie_plots"].update(substories=2, tinystories=2, frames=3)
        for stage in ("movie_plots", "qa_pairs"):
            params[stage]["writer"] = "llm"
            params[stage]["llm"].update(client="openai", base_url=server.base_url, model="tiny",
                                        api_key_env="DREAMFRAME_TEST_KEY")
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run_env = {**env(root), "DREAMFRAME_TEST_KEY": key}
        outputs = []
        for args in (["--verbose", "run"], ["status"], ["export", str(tmp_path / "out"), "-f", "llava", "-f", "hf"]):
            done = subprocess.run([DREAMFRAME, *args], cwd=root, env=run_env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-3000:]
            outputs += [done.stdout, done.stderr]
        bad_key = {**run_env, "DREAMFRAME_TEST_KEY": key + " oops\n"}  # not a key: refused, not echoed
        done = subprocess.run([DREAMFRAME, "run"], cwd=root, env=bad_key, capture_output=True, text=True)
        assert done.returncode != 0 and "movie_plots.llm.api_key_env" in done.stderr
        outputs += [done.stdout, done.stderr]

    assert server.bodies and all(h.get("Authorization") == f"Bearer {key}" for h in server.headers)
    quarantine = (root / "data/movie_plots/quarantine.parquet").read_bytes()
    assert b"may not ask for that" in quarantine  # the refusal is kept, its key is not
    files = [p for folder in (root, tmp_path / "out") for p in folder.rglob("*") if p.is_file()]
    assert any(".dagster" in p.parts for p in files) and any(p.suffix == ".log" for p in files)
    leaks = [str(p) for p in files if key.encode() in p.read_bytes()]
    leaks += [f"output {i}" for i, text in enumerate(outputs) if key in text]
    assert leaks == []
