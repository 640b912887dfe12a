"""The Dagster UI end to end: `dagster dev` on loopback, driven through its GraphQL API.

Starts the real webserver + code server + daemon on a tiny temporary project, waits for the
sensor to give each movie its partition, lists the asset graph, launches one movie through
every per-movie asset as the UI does (``launchRun`` on the implicit ``__ASSET_JOB`` with an
asset selection and the ``dagster/partition`` tag), waits for the run and reads that
movie's materializations, their metadata and checks back.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ..conftest import STAGES

DAGSTER = Path(sys.executable).with_name("dagster")
POLL = 0.5  # seconds between polls; the number of polls bounds every wait, nothing asserts on time
STARTUP_POLLS = 600
RUN_POLLS = 1200

WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name } }
          ... on PythonError { message }
        }
      }
    }
  }
}
"""

ASSET_NODES_QUERY = """
query {
  assetNodes {
    assetKey { path }
    groupName
    dependencyKeys { path }
    jobNames
  }
}
"""

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status assetSelection { path } }
  }
}
"""

RUN_FAILURE_EVENTS = """
query Events($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
  }
}
"""

PARTITION_KEYS = """
query Partitions($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode { partitionKeys }
  }
}
"""

MATERIALIZATIONS = """
query Materializations($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset {
      definition { dataVersion }
      assetMaterializations(limit: 5) {
        runId
        partition
        tags { key value }
        metadataEntries {
          __typename
          label
          ... on IntMetadataEntry { intValue }
          ... on BoolMetadataEntry { boolValue }
          ... on FloatMetadataEntry { floatValue }
          ... on JsonMetadataEntry { jsonString }
          ... on PathMetadataEntry { path }
        }
      }
    }
  }
}
"""

CHECK_EXECUTIONS = """
query Checks($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      assetChecksOrError {
        __typename
        ... on AssetChecks {
          checks { name executionForLatestMaterialization { status runId } }
        }
      }
    }
  }
}
"""

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterDev:
    """A `dagster dev` process group; a GraphQL client on its loopback port."""

    def __init__(self, project: Path, home: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "DREAMFRAME_ROOT": str(project),
            "PATH": f"{DAGSTER.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.log = home / "dagster_dev.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [str(DAGSTER), "dev", "-h", "127.0.0.1", "-p", str(self.port), "-m", "dreamframe_assets.definitions"],
            cwd=project,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=60.0)

    def wait_until_up(self) -> None:
        for _ in range(STARTUP_POLLS):
            if self.proc.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.client.get("/server_info").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL)
        raise AssertionError(f"dagster dev did not answer on {self.url}:\n{self.log_tail()}")

    def graphql(self, query: str, **variables) -> dict:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def log_tail(self, chars: int = 4000) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # dagster dev stops its code server and daemon
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        try:  # anything of the group still alive (a run worker) goes too
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log_file.close()


@pytest.fixture
def dagster_dev(warm_project, tmp_path_factory):
    server = DagsterDev(warm_project, tmp_path_factory.mktemp("dagster_home"))
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


def loaded_repository(server: DagsterDev) -> tuple[str, str]:
    """(code location, repository) once the code location has loaded."""
    for _ in range(STARTUP_POLLS):
        workspace = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        [entry] = workspace["locationEntries"]
        if entry["loadStatus"] == "LOADED":
            location = entry["locationOrLoadError"]
            assert location["__typename"] == "RepositoryLocation", location
            [repo] = location["repositories"]
            return entry["name"], repo["name"]
        time.sleep(POLL)
    raise AssertionError(f"code location did not load:\n{server.log_tail()}")


def wait_for_run(server: DagsterDev, run_id: str) -> dict:
    for _ in range(RUN_POLLS):
        run = server.graphql(RUN_QUERY, runId=run_id)["runOrError"]
        assert run["__typename"] == "Run", run
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        time.sleep(POLL)
    raise AssertionError(f"run {run_id} did not finish:\n{server.log_tail()}")


def failure_messages(server: DagsterDev, run_id: str) -> str:
    logs = server.graphql(RUN_FAILURE_EVENTS, runId=run_id)["logsForRun"]
    events = logs.get("events", [])
    return "\n".join(
        (e.get("error") or {}).get("message") or e.get("message", "")
        for e in events
        if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent")
    )


def wait_for_partitions(server: DagsterDev, want: list[str]) -> list[str]:
    """The movie partitions, once the sensor (run by the daemon) has added them."""
    for _ in range(RUN_POLLS):
        node = server.graphql(PARTITION_KEYS, path=["movie_plots"])["assetNodeOrError"]
        if sorted(node["partitionKeys"]) == sorted(want):
            return node["partitionKeys"]
        time.sleep(POLL)
    raise AssertionError(f"the movies sensor did not add the partitions {want}:\n{server.log_tail()}")


@pytest.mark.skipif(not DAGSTER.exists(), reason="no dagster executable beside this Python")
def test_ui_materializes_one_movie_through_the_graph(warm_project, dagster_dev):
    from dreamframe_assets.core.ids import movie_id_for

    from ..conftest import TINY_THEMES

    project = warm_project
    server = dagster_dev
    location, repository = loaded_repository(server)
    page = server.client.get("/asset-groups")  # the lineage page the UI opens on
    assert page.status_code == 200 and "<html" in page.text.lower()
    movies = [movie_id_for(t) for t in TINY_THEMES]
    wait_for_partitions(server, movies)

    # the asset graph as the UI shows it
    nodes = {tuple(n["assetKey"]["path"]): n for n in server.graphql(ASSET_NODES_QUERY)["assetNodes"]}
    assert set(nodes) == {(s,) for s in STAGES}
    assert {tuple(d["path"]) for d in nodes[("style_banks",)]["dependencyKeys"]} == {("movie_plots",)}
    assert {tuple(d["path"]) for d in nodes[("eval_scores",)]["dependencyKeys"]} >= {("qa_pairs",)}
    assert all("__ASSET_JOB" in n["jobNames"] for n in nodes.values())

    # "Materialize selected" for one partition: the implicit asset job, the per-movie assets, one movie
    per_movie = [s for s in STAGES if s != "eval_scores"]
    movie = movies[1]
    selector = {
        "repositoryLocationName": location,
        "repositoryName": repository,
        "jobName": "__ASSET_JOB",
        "assetSelection": [{"path": [s]} for s in per_movie],
    }
    # in_process: one run worker loads the code and the embedding model once, instead of one
    # subprocess per step (the UI's default); the graph, the checks and the events are the same
    params = {"selector": selector, "mode": "default", "runConfigData": {"execution": {"config": {"in_process": {}}}},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": movie}]}}
    launched = server.graphql(LAUNCH_RUN, executionParams=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    run = wait_for_run(server, run_id)
    assert run["status"] == "SUCCESS", failure_messages(server, run_id) + "\n" + server.log_tail()
    assert {tuple(a["path"]) for a in run["assetSelection"]} == {(s,) for s in per_movie}

    # each asset's materialization of that movie, with its metadata and data version, read back
    for stage in per_movie:
        asset = server.graphql(MATERIALIZATIONS, path=[stage])["assetOrError"]
        assert asset["__typename"] == "Asset", (stage, asset)
        [mat] = asset["assetMaterializations"]
        assert mat["runId"] == run_id and mat["partition"] == movie, stage
        entries = {e["label"]: e for e in mat["metadataEntries"]}
        assert entries["cache_misses"]["intValue"] == 1, stage
        assert entries["cache_hits"]["intValue"] == 0, stage
        assert entries["no_op"]["boolValue"] is False, stage
        assert {"redone", "files_written", "path", "movies"} <= set(entries), stage
        assert json.loads(entries["movies"]["jsonString"]) == {"states": {"done": 1}, "not_done": {}}, stage
        tags = {t["key"]: t["value"] for t in mat["tags"]}
        assert tags.get("dagster/data_version"), (stage, tags)
        assert "dagster/code_version" in tags, stage
        assert sorted(p.stem for p in (project / "data" / stage / "movies").glob("*.json")) == [movie], stage

    # the blocking checks ran in the same step and passed
    for stage in per_movie:
        node = server.graphql(CHECK_EXECUTIONS, path=[stage])["assetNodeOrError"]
        checks = node["assetChecksOrError"]["checks"]
        assert checks, stage
        for check in checks:
            execution = check["executionForLatestMaterialization"]
            assert execution and execution["status"] == "SUCCEEDED" and execution["runId"] == run_id, (stage, check)

    assert len(list((project / "data/keyframes/shards").glob("*.tar"))) == 1
