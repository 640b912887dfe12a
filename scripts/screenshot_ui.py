"""The README's picture of the asset graph: a headless Chromium screenshot of the Dagster UI.

    .venv/bin/python scripts/screenshot_ui.py                  # this repo -> docs/asset_graph.png
    .venv/bin/python scripts/screenshot_ui.py --project DIR --out graph.png

Starts `dagster dev` on a free loopback port for the project (its `workspace.yaml` if it has
one, else the `dreamframe_assets.definitions` module) on a temporary DAGSTER_HOME whose storage
is <project>/.dagster when that exists (the instance `make run` records into, so the graph shows
the materializations); waits until the code location has loaded; takes the screenshot of the
global asset lineage page with every group expanded; stops the server (its whole process group).

Needs Debian's `chromium` package (`apt-get install -y chromium`).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
DAGSTER = Path(sys.executable).with_name("dagster")
GRAPH_PAGE = "/asset-groups"  # the global asset lineage: every asset of every group, with its edges

GROUPS = """
query { assetNodes { groupName repository { name location { name } } } }
"""

LOCATION_STATUS = """
query { workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def instance_home(tmp: Path, storage: Path | None) -> Path:
    """A DAGSTER_HOME for the screenshot: the project's instance config and storage (runs, event log),
    telemetry off, and the first-visit "Join the community" dialog off (`nux`), so nothing covers the
    graph and the project's own DAGSTER_HOME is not written to (no `.nux/nux.yaml`)."""
    config = {}
    if storage is not None and (storage / "dagster.yaml").exists():
        config = yaml.safe_load((storage / "dagster.yaml").read_text()) or {}
    config["telemetry"] = {"enabled": False}
    config["nux"] = {"enabled": False}
    if storage is not None:
        config.setdefault("storage", {"sqlite": {"base_dir": str(storage)}})
        config.setdefault("local_artifact_storage", {"module": "dagster._core.storage.root", "class": "LocalArtifactStorage",
                                                     "config": {"base_dir": str(storage)}})
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def start_dagster(project: Path, home: Path, port: int, log) -> subprocess.Popen:
    target = ["-w", "workspace.yaml"] if (project / "workspace.yaml").exists() else ["-m", "dreamframe_assets.definitions"]
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", "DREAMFRAME_ROOT": str(project),
           "PATH": f"{DAGSTER.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.Popen([str(DAGSTER), "dev", "-h", "127.0.0.1", "-p", str(port), *target], cwd=project, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left of the group
    except ProcessLookupError:
        pass


def wait_until_loaded(proc: subprocess.Popen, url: str, tries: int = 600) -> None:
    """Until the webserver answers and its code location has loaded (0.5 s between tries)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(tries):
            if proc.poll() is not None:
                raise SystemExit(f"dagster dev exited with {proc.returncode}")
            try:
                body = client.post("/graphql", json={"query": LOCATION_STATUS}).json()
                entries = body["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    for e in entries:
                        if e["locationOrLoadError"]["__typename"] == "PythonError":
                            raise SystemExit(f"code location {e['name']} failed to load: "
                                             f"{e['locationOrLoadError']['message']}")
                    return
            except (httpx.TransportError, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.5)
    raise SystemExit(f"dagster dev did not come up on {url}")


def crop_to_graph(path: Path, margin: int = 40) -> tuple[int, int]:
    """Crop the screenshot to the drawn graph: right of the asset sidebar's border, below the
    toolbar's, left of the zoom controls, the bounding box of everything darker than the dotted
    background, plus a margin. Returns the new size."""
    import numpy as np
    from PIL import Image

    image = Image.open(path).convert("RGB")
    grey = np.asarray(image, dtype=np.float32).mean(axis=2)
    height, width = grey.shape
    line = grey < 240
    top = max([y for y in range(int(height * 0.2)) if line[y, width // 3 :].mean() > 0.9], default=-1) + 1
    left = max([x for x in range(int(width * 0.5)) if line[top:, x].mean() > 0.9], default=-1) + 1
    right = width - 60  # the zoom controls
    ys, xs = np.nonzero(grey[top:, left:right] < 225)
    if len(xs) == 0:
        return image.size
    want = (left + xs.min() - margin, top + ys.min() - margin, left + xs.max() + margin, top + ys.max() + margin)
    box = (max(left, want[0]), max(top, want[1]), min(right, want[2]), min(height, want[3]))
    # where the page ends before the margin does, pad with the canvas colour: even margins all round
    cropped = Image.new("RGB", (want[2] - want[0], want[3] - want[1]), (255, 255, 255))
    cropped.paste(image.crop(box), (box[0] - want[0], box[1] - want[1]))
    cropped.save(path, optimize=True)
    return cropped.size


def page_url(url: str, page: str) -> str:
    """The page with every asset group expanded (`expanded=` holds group ids, in both the global and
    the per-code-location form the UI uses), so the picture shows assets, not collapsed groups."""
    if page != GRAPH_PAGE:
        return url + page
    nodes = httpx.post(url + "/graphql", json={"query": GROUPS}, timeout=60).json()["data"]["assetNodes"]
    ids = []
    for node in nodes:
        repo = node["repository"]
        for gid in (f"global@global:{node['groupName']}", f"{repo['name']}@{repo['location']['name']}:{node['groupName']}"):
            if gid not in ids:
                ids.append(gid)
    return f"{url}{page}?{urlencode({'expanded': ','.join(ids)})}"


def screenshot(url: str, out: Path, width: int, height: int, budget_ms: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if not out.exists():
        raise SystemExit(f"chromium wrote no screenshot (exit {done.returncode}):\n{done.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=REPO, help="project folder (default: this repo)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "asset_graph.png")
    parser.add_argument("--page", default=GRAPH_PAGE, help=f"UI path to capture (default {GRAPH_PAGE})")
    parser.add_argument("--dagster-home", type=Path,
                        help="the instance whose runs to show (default: <project>/.dagster if it exists, else none)")
    # wide enough that the graph is drawn at a zoom where asset nodes show their status and checks
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1100)
    parser.add_argument("--no-crop", action="store_true", help="keep the whole page, not just the graph")
    parser.add_argument("--budget-ms", type=int, default=15000, help="Chromium's --virtual-time-budget")
    args = parser.parse_args(argv)

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: install Debian's chromium package "
                         "(`apt-get update && apt-get install -y chromium`) and run this again")
    project = args.project.resolve()
    out = args.out.resolve()
    storage = args.dagster_home or (project / ".dagster" if (project / ".dagster").is_dir() else None)
    with tempfile.TemporaryDirectory(prefix="dagster-home-") as tmp:
        home = instance_home(Path(tmp), storage.resolve() if storage else None)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryFile() as log:
            proc = start_dagster(project, home, port, log)
            try:
                wait_until_loaded(proc, url)
                target = page_url(url, args.page)
                screenshot(target, out, args.width, args.height, args.budget_ms)
                if not args.no_crop:
                    crop_to_graph(out)
            except BaseException:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace")[-4000:])
                raise
            finally:
                stop(proc)
    print(f"wrote {out} ({out.stat().st_size:,} bytes) from {target}")


if __name__ == "__main__":
    main()
