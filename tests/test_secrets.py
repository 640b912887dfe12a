"""An API key comes from the environment and goes to its server only: it is in no file a
run writes (data, caches, logs, the Dagster instance, exports) and in nothing it prints;
against a flaky server (429 with Retry-After, 503, fenced and truncated JSON, refusals)
every movie is built or quarantined with its reason."""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import polars as pl
import pytest
import yaml

from .conftest import warm_copy
from .faults import DREAMFRAME, env
from .models.test_llm import ChatServer, Reply
from .story.test_llm import canned

pytestmark = pytest.mark.integration


def test_a_planted_key_reaches_its_server_and_nothing_else(built_dataset, tmp_path):
    key = "sk-planted-" + secrets.token_hex(16)
    root = warm_copy(built_dataset, tmp_path / "project")

    seen: list[tuple[float, str]] = []

    def handler(body, n):
        """A flaky server: a 429 with Retry-After, then a 503, then fenced JSON; one theme gets
        refusals that quote the key back, another truncated JSON."""
        prompt = json.dumps(body["messages"])
        seen.append((time.monotonic(), prompt))
        if n == 0:
            return Reply(429, '{"error": "slow down"}', {"Retry-After": "1"})
        if n == 1:
            return Reply(503, "overloaded")
        if "broken clock" in prompt:
            return f"Sorry, the key {key} may not ask for that."
        if "cracked mirror" in prompt:
            return canned(body, n)[:40]
        return f"```json\n{canned(body, n)}\n```"

    with ChatServer(handler) as server:
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["movie_plots"]["themes"] = ["A lighthouse keeper finds a message in a bottle during a winter storm",
                                           "A broken clock tower stops time in a small town",
                                           "A cracked mirror shows a tailor the future"]
        params["movie_plots"].update(substories=2, tinystories=2, frames=3)
        for stage in ("movie_plots", "qa_pairs"):
            params[stage]["writer"] = "llm"
            params[stage]["llm"].update(client="openai", base_url=server.base_url, model="tiny",
                                        api_key_env="DREAMFRAME_TEST_KEY")
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run_env = {**env(root), "DREAMFRAME_TEST_KEY": key}
        outputs = []
        for args in (["--verbose", "run", "movie_plots", "style_banks", "keyframes", "qa_pairs"], ["status"], ["export", str(tmp_path / "out"), "-f", "llava", "-f", "hf"]):
            done = subprocess.run([DREAMFRAME, *args], cwd=root, env=run_env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-3000:]
            outputs += [done.stdout, done.stderr]
        bad_key = {**run_env, "DREAMFRAME_TEST_KEY": key + " oops\n"}  # not a key: refused, not echoed
        done = subprocess.run([DREAMFRAME, "run"], cwd=root, env=bad_key, capture_output=True, text=True)
        assert done.returncode != 0 and "movie_plots.llm.api_key_env" in done.stderr
        outputs += [done.stdout, done.stderr]

    assert server.bodies and all(h.get("Authorization") == f"Bearer {key}" for h in server.headers)
    first_at, first = seen[0]
    assert min(t for t, prompt in seen[1:] if prompt == first) - first_at >= 0.9  # Retry-After: 1 honoured
    quarantine = pl.read_parquet(root / "data/movie_plots/quarantine.parquet")
    by_movie = {mid: reasons for mid, reasons in quarantine.group_by("movie_id").agg("reason").iter_rows()}
    assert sorted(by_movie) == sorted(m for m in by_movie if m.startswith(("a-broken", "a-cracked")))
    assert len(by_movie) == 2 and all(r and all(r) for r in by_movie.values())  # each with its reason
    assert any("may not ask for that" in text for text in quarantine["response"])  # kept, its key masked
    assert list((root / "data/qa_pairs/movies").glob("a-lighthouse-*.json"))
    files = [p for folder in (root, tmp_path / "out") for p in folder.rglob("*") if p.is_file()]
    assert any(".dagster" in p.parts for p in files) and any(p.suffix == ".log" for p in files)
    leaks = [str(p) for p in files if key.encode() in p.read_bytes()]
    leaks += [f"output {i}" for i, text in enumerate(outputs) if key in text]
    assert leaks == []
