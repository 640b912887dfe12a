"""Resources: what assets use but do not own. Here, the project folder and its params."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from .core.params import Params
from .pipeline.backends import checked_params


def project_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding params.yaml and data/: explicit, else $DREAMFRAME_ROOT, else cwd."""
    return Path(root or os.environ.get("DREAMFRAME_ROOT") or Path.cwd()).resolve()


class Workspace(dg.ConfigurableResource):
    """The DreamFrame project a run works in (its params.yaml, data/ and item cache)."""

    root: str = ""

    @property
    def path(self) -> Path:
        return project_root(self.root or None)

    def params(self) -> Params:
        return checked_params(self.path)
