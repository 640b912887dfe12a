import os

import pytest

from dreamframe_assets.core.cache import ItemCache, digest, seal, unseal, write_if_changed


def test_digest_is_stable_and_order_free_for_dicts():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest("x", 1) != digest("x", 2)


def test_item_cache_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return b"payload"

    cache = ItemCache(tmp_path, "stage")
    assert cache.get_or_compute("k1", compute, item="movie-a") == b"payload"
    again = ItemCache(tmp_path, "stage")  # a later run
    assert again.get_or_compute("k1", compute) == b"payload"
    assert len(calls) == 1
    assert (cache.misses, cache.missed, again.hits, again.misses) == (1, ["movie-a"], 1, 0)


def test_failed_compute_stores_nothing(tmp_path):
    cache = ItemCache(tmp_path, "stage")

    def boom():
        raise RuntimeError("backend down")

    try:
        cache.get_or_compute("k", boom)
    except RuntimeError:
        pass
    assert cache.get_or_compute("k", lambda: b"ok") == b"ok"


def test_write_if_changed_leaves_identical_files_alone(tmp_path):
    path = tmp_path / "sub" / "t.bin"
    assert write_if_changed(path, b"abc")
    os.utime(path, (1, 1))
    assert not write_if_changed(path, b"abc")
    assert path.stat().st_mtime == 1
    assert write_if_changed(path, b"abd")
    assert path.read_bytes() == b"abd"
    assert [p.name for p in path.parent.iterdir()] == ["t.bin"]  # no temp files left


def _entry(cache: ItemCache, key: str):
    return next(p for p in cache.dir.rglob("*") if p.is_file() and p.name == key)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "unsealed"])
def test_a_damaged_entry_is_detected_reported_and_recomputed(tmp_path, caplog, damage):
    """A crash, a full disk or a bad sector leaves an entry that is not what was stored:
    it is found by its checksum, reported, recomputed and replaced, never served."""
    cache = ItemCache(tmp_path, "stage")
    cache.put("k", b"the movie's plot " * 100)
    path = _entry(cache, "k")
    blob = path.read_bytes()
    damaged = {"truncate": blob[: len(blob) // 2], "flip": blob[:-5] + bytes([blob[-5] ^ 0x04]) + blob[-4:],
               "empty": b"", "unsealed": b"the movie's plot " * 100}[damage]
    path.write_bytes(damaged)
    again = ItemCache(tmp_path, "stage")
    with caplog.at_level("WARNING", logger="dreamframe"):
        data = again.get_or_compute("k", lambda: b"recomputed")
    assert data == b"recomputed"
    assert (again.hits, again.misses, again.damaged) == (0, 1, 1)
    assert "damaged" in caplog.text and str(path) in caplog.text
    assert unseal(path.read_bytes()) == b"recomputed"  # replaced by a whole entry


def test_seal_round_trips_and_rejects_any_single_bit_flip():
    data = bytes(range(256)) * 4
    blob = seal(data)
    assert unseal(blob) == data
    for i in range(0, len(blob), 37):
        for bit in (0, 3, 7):
            assert unseal(blob[:i] + bytes([blob[i] ^ (1 << bit)]) + blob[i + 1:]) is None
