"""Training exports on a tiny built dataset, read back with the readers trainers use (datasets, PyAV)."""

from __future__ import annotations

import json
import re

import av
import numpy as np
import pytest
import yaml
from PIL import Image

from dreamframe_assets.core.store import read_plots
from dreamframe_assets.dataset import export
from dreamframe_assets.pipeline.steps import read_keyframes, read_qa

from ..conftest import copy_built

FPS = 2.0


pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(built_dataset, tmp_path_factory):
    """A copy of the session's built project (3 movies, 12 frames each) for this module."""
    return copy_built(built_dataset, tmp_path_factory.mktemp("export-project") / "built")


@pytest.fixture(scope="module")
def exported(built, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    progress = []
    summary = export.export_all(built, out, ["llava", "hf"], fps=FPS, subtitles=True, license="cc-by-nc-4.0",
                                on_item=lambda done, total: progress.append((done, total)))
    return out, summary, progress


def test_export_all_adds_the_videos_it_names(built, exported):
    out, summary, progress = exported
    assert set(summary) == {"mp4", "llava", "hf"}  # hf names movies/*.mp4
    movies = list(read_plots(built))
    assert progress == [(i + 1, len(movies)) for i in range(len(movies))]
    for fmt in summary.values():
        assert all((out / f).is_file() for f in fmt["files"])
    again = export.export_all(built, out, ["llava", "hf"], fps=FPS, subtitles=True, license="cc-by-nc-4.0")
    rewritten = {name: fmt["written"] for name, fmt in again.items() if fmt["written"]}
    assert not rewritten, f"same data, same bytes: nothing should be rewritten, but {rewritten} were"
    with pytest.raises(ValueError, match="unknown export format"):
        export.export_all(built, out, ["webdataset"])


def test_hf_dataset_loads_with_datasets(built, exported, tmp_path):
    import datasets

    out, _, _ = exported
    qas = read_qa(built)
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == len(qas)
    assert {"movie_id", "qa_id", "level", "qtype", "question", "answer", "options", "answer_index",
            "evidence_frames", "video", "evidence_frame_paths"} <= set(ds.column_names)
    row = ds[0]
    assert row["answer"] == row["options"][row["answer_index"]]
    assert all(r["answer"] == r["options"][r["answer_index"]] for r in ds)
    assert (out / row["video"]).is_file()
    assert row["evidence_frame_paths"] and all((out / p).is_file() for p in row["evidence_frame_paths"])
    assert len(row["evidence_frame_paths"]) == len(row["evidence_frames"])


def test_dataset_card(built, exported):
    out, _, _ = exported
    text = (out / "README.md").read_text()
    head, body = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S).groups()
    meta = yaml.safe_load(head)
    assert meta["license"] == "cc-by-nc-4.0"
    assert meta["size_categories"] == ["n<1K"]
    assert set(meta["task_categories"]) == {"visual-question-answering", "video-text-to-text"}
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "data/*.parquet"}
    metrics = json.loads((built / "data/eval_scores/metrics.json").read_text())
    assert f"| {len(read_plots(built))} | {metrics['counts']['keyframes']} | {len(read_qa(built))} |" in body
    for prompt, version in export.prompt_versions().items():
        assert f"| {prompt} | {version} |" in body
    assert "| qa | 1 |" in body
    assert f"| accuracy.oracle.overall | {metrics['accuracy']['oracle']['overall']:.4f} |" in body
    assert f"| language_bias_gap | {metrics['language_bias_gap']:.4f} |" in body
    for key in ("map.text", "style_consistency.within_movie", "diversity.distinct_2"):
        assert f"| {key} |" in body
    assert "keyframes:\n  renderer: offline" in body  # the params.yaml, whole
    assert "| keyframe renderer (`keyframes.renderer`) | offline |" in body


def _decode(path):
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in box.decode(stream)]
        return frames, stream.codec_context.name, float(box.duration / av.time_base)


def test_mp4_decodes_to_the_keyframes(built, exported):
    out, _, _ = exported
    plot = next(p for p in read_plots(built).values() if p.dialogue)
    mid = plot.movie.movie_id
    keyframes = read_keyframes(built, mid)
    frames, codec, seconds = _decode(out / f"movies/{mid}.mp4")
    assert codec == "h264"
    assert len(frames) == len(keyframes) * 1  # one video frame per keyframe
    assert frames[0].shape == keyframes[0].shape == (64, 96, 3)
    assert seconds == pytest.approx(len(keyframes) / FPS, abs=0.01)
    spoken = {line.after_frame for line in plot.dialogue}
    silent = next(i for i in range(len(keyframes)) if i not in spoken)
    error = np.abs(frames[silent].astype(int) - keyframes[silent]).mean()
    assert error < 8  # lossy, but the same picture


def test_subtitles_burned_and_in_srt(built, exported):
    out, _, _ = exported
    plot = next(p for p in read_plots(built).values() if p.dialogue)
    mid, line = plot.movie.movie_id, plot.dialogue[0]
    keyframes = read_keyframes(built, mid)
    frames, _, _ = _decode(out / f"movies/{mid}.mp4")
    band = slice(-12, None)  # the bottom rows
    i = line.after_frame
    assert np.abs(frames[i][band].astype(int) - keyframes[i][band]).mean() > 20
    srt = (out / f"movies/{mid}.srt").read_text()
    name = plot.character(line.speaker).name
    start = export._timestamp(i / FPS)
    assert f"1\n{start} --> {export._timestamp((i + 1) / FPS)}\n{name}: {line.text}\n" in srt
    assert srt.count(" --> ") == len(plot.dialogue)


def test_mp4_is_deterministic_and_pads_odd_sizes(tmp_path):
    rng = np.random.default_rng(0)
    images = [export.even_size(rng.integers(0, 255, (33, 47, 3), dtype=np.uint8)) for _ in range(3)]
    assert images[0].shape == (34, 48, 3)
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert export.encode_mp4(a, images, 1.5) and export.encode_mp4(b, images, 1.5)
    assert a.read_bytes() == b.read_bytes()
    assert not export.encode_mp4(a, images, 1.5)  # unchanged: not rewritten
    frames, _, seconds = _decode(a)
    assert len(frames) == 3 and frames[0].shape == (34, 48, 3)
    assert seconds == pytest.approx(2.0, abs=0.01)


def test_llava_records(built, exported):
    out, _, _ = exported
    qas = {q.qa_id: q for q in read_qa(built)}
    records = json.loads((out / "llava.json").read_text())
    assert len(records) == len(qas) and {r["id"] for r in records} == set(qas)
    for r in records:
        qa = qas[r["id"]]
        human, gpt = r["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert human["value"].startswith("<video>\n" + qa.question + "\n")
        for letter, option in zip("ABCD", qa.options):
            assert f"\n{letter}. {option}\n" in human["value"]
        assert gpt["value"] == f"{'ABCD'[qa.answer_index]}. {qa.answer}"
        assert r["frames"] == f"frames/{qa.movie_id}"
    for mid, plot in read_plots(built).items():
        pngs = sorted((out / "frames" / mid).glob("*.png"))
        assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(len(plot.frames))]
    assert np.array_equal(np.asarray(Image.open(pngs[0]).convert("RGB")),
                          read_keyframes(built, mid)[0])


def test_llava_video_and_videochatgpt(built, tmp_path):
    summary = export.export_all(built, tmp_path, ["llava", "videochatgpt"], frames_as="video", subtitles=False)
    assert set(summary) == {"mp4", "llava", "videochatgpt"}
    assert not (tmp_path / "frames").exists()
    qas = read_qa(built)
    llava = json.loads((tmp_path / "llava.json").read_text())
    assert all((tmp_path / r["video"]).is_file() and "frames" not in r for r in llava)
    records = json.loads((tmp_path / "videochatgpt_qa.json").read_text())
    assert len(records) == len(qas)
    for r, qa in zip(records, qas):
        assert r == {"video_id": qa.movie_id, "video": f"movies/{qa.movie_id}.mp4", "question": qa.question,
                     "answer": qa.answer, "qa_id": qa.qa_id, "qtype": qa.qtype}
        assert (tmp_path / r["video"]).is_file()
    with pytest.raises(ValueError, match="frames_as"):
        export.export_llava(built, tmp_path, frames_as="gif")
