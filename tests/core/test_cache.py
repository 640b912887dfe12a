import os

from dreamframe_assets.core.cache import ItemCache, digest, write_if_changed


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
