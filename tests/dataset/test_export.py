"""Training exports on a tiny built dataset, read back with the readers trainers use (datasets, PyAV)."""

from __future__ import annotations

import json
import re

import av
import numpy as np
import pytest
import yaml
from PIL import Image

from dreamframe_assets.core.plot import QA
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
            "open_answer", "evidence_frames", "video", "evidence_frame_paths"} <= set(ds.column_names)
    row = ds[0]
    assert row["answer"] == row["options"][row["answer_index"]]
    assert all(r["answer"] == r["options"][r["answer_index"]] for r in ds)
    for r, qa in zip(ds, qas):  # open-ended: the answer as a sentence, none where the question needs its options
        assert r["open_answer"] == (None if export.needs_options(qa) else export.answer_sentence(qa.answer))
    assert any(r["open_answer"] is None for r in ds) and any(r["open_answer"] for r in ds)
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
    assert "multiple-choice" in meta["tags"] and "open-ended" not in meta["tags"]  # the default mode
    assert "# DreamFrame synthetic video QA\n\nMultiple-choice video question answering" in body
    assert "(`questions: multiple_choice`)" in body and "llava_open_ended.json" not in body
    assert f"| accuracy.oracle.overall | {metrics['accuracy']['oracle']['overall']:.4f} |" in body
    assert f"| language_bias_gap | {metrics['language_bias_gap']:.4f} |" in body
    for key in ("map.text", "style_consistency.within_movie", "diversity.distinct_2"):
        assert f"| {key} |" in body
    assert "keyframes:\n  renderer: offline" in body  # the params.yaml, whole
    assert "| keyframe renderer (`keyframes.renderer`) | offline |" in body


def test_dataset_card_says_the_question_form(built):
    qas = read_qa(built)
    left_out = sum(export.needs_options(q) for q in qas)
    assert left_out
    for questions, tags, first in (("open_ended", ["open-ended"], "Open-ended video"),
                                   ("both", ["multiple-choice", "open-ended"], "Multiple-choice and open-ended video")):
        head, body = re.match(r"^---\n(.*?)\n---\n(.*)$", export.dataset_card(built, qas, questions=questions),
                              re.S).groups()
        assert [t for t in yaml.safe_load(head)["tags"] if t.endswith("-ended") or t.endswith("-choice")] == tags
        assert f"\n\n{first} question answering" in body
        assert f"(`questions: {questions}`)" in body
        assert f"{left_out} question(s) name their options" in body and "llava_open_ended.json" in body
        assert ("llava.json" in body) == (questions == "both")
    with pytest.raises(ValueError, match="questions"):
        export.dataset_card(built, qas, questions="open")


def test_answer_sentence_and_needs_options():
    assert export.answer_sentence("hugging") == "Hugging."
    assert export.answer_sentence(" three ") == "Three."
    assert export.answer_sentence("It takes place at the old lighthouse.") == "It takes place at the old lighthouse."
    assert export.answer_sentence('He shouts "Run!"') == 'He shouts "Run!"'
    assert export.answer_sentence("a tall woman (in red)") == "A tall woman (in red)."
    assert export.answer_sentence("") == ""

    def qa(question):
        return QA(movie_id="m", qa_id="m-q0", level="qa", qtype="who", question=question,
                  answer="a", options=("a", "b", "c", "d"), answer_index=0,
                  evidence_frames=(0,), subject=None, source="qa:0:answer")

    assert export.needs_options(qa("Which of these people can be seen in keyframe 1?"))
    assert export.needs_options(qa("Which of the following happens first?"))
    assert not export.needs_options(qa("Who says \"Now, we finish this.\"?"))
    assert not export.needs_options(qa("Describe in detail the events that occur in this movie."))


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
    out, summary, _ = exported
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
    assert not (out / "llava_open_ended.json").exists()  # multiple choice is the default, alone
    assert summary["llava"]["counts"]["records"] == summary["llava"]["counts"]["multiple_choice"] == len(qas)
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
    asked = [qa for qa in qas if not export.needs_options(qa)]  # open-ended: as the open-ended LLaVA export
    assert len(records) == len(asked) < len(qas)
    assert summary["videochatgpt"]["counts"] == {"records": len(asked), "needs_options": len(qas) - len(asked)}
    for r, qa in zip(records, asked):
        assert r == {"video_id": qa.movie_id, "video": f"movies/{qa.movie_id}.mp4", "question": qa.question,
                     "answer": export.answer_sentence(qa.answer), "qa_id": qa.qa_id, "qtype": qa.qtype}
        assert (tmp_path / r["video"]).is_file()
    with pytest.raises(ValueError, match="frames_as"):
        export.export_llava(built, tmp_path, frames_as="gif")


def _open_ended_checks(records, qas):
    """The open-ended LLaVA records: the question alone, the answer text, no question that needs its options."""
    asked = {q.qa_id: q for q in qas if not export.needs_options(q)}
    assert [r["id"] for r in records] == list(asked)
    for r in records:
        qa = asked[r["id"]]
        human, gpt = r["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert human["value"] == f"<video>\n{qa.question}"
        assert "letter" not in human["value"] and not re.search(r"^[ABCD]\. ", human["value"], re.M)
        assert gpt["value"] == export.answer_sentence(qa.answer)
        assert gpt["value"][0].isupper() and gpt["value"][-1] in ".!?\""
    return asked


def test_llava_open_ended(built, exported, tmp_path):
    out, _, _ = exported
    qas = read_qa(built)
    summary = export.export_llava(built, tmp_path, frames_as="video", questions="open_ended")
    assert summary["files"] == ["llava_open_ended.json"] and not (tmp_path / "llava.json").exists()
    records = json.loads((tmp_path / "llava_open_ended.json").read_text())
    asked = _open_ended_checks(records, qas)
    assert summary["counts"] == {"records": len(asked), "open_ended": len(asked),
                                 "needs_options": len(qas) - len(asked)}
    assert {q.qtype for q in qas if q.qa_id not in asked} <= {"who", "order"}  # "Which of these ..."
    assert len(asked) < len(qas)
    overview = next(r for r in records if asked[r["id"]].qtype == "overview")  # the paper's open-ended question
    qa = asked[overview["id"]]
    assert overview["conversations"][0]["value"] == "<video>\nDescribe in detail the events that occur in this movie."
    assert overview["conversations"][1]["value"] == export.answer_sentence(qa.options[qa.answer_index])
    with pytest.raises(ValueError, match="questions"):
        export.export_llava(built, tmp_path, questions="open")
    with pytest.raises(ValueError, match="questions"):  # refused before anything is written
        export.export_all(built, tmp_path / "nothing", ["llava"], questions="mc")
    assert not (tmp_path / "nothing").exists()


def test_cli_questions_flag_reaches_the_export(built, exported, tmp_path):
    from typer.testing import CliRunner

    from dreamframe_assets.cli import app

    out, _, _ = exported
    runner = CliRunner()
    run = runner.invoke(app, ["export", str(tmp_path), "-f", "llava", "--questions", "both", "--root", str(built)])
    assert run.exit_code == 0, run.output
    # both: the multiple-choice file as the default writes it, and the open-ended one beside it
    assert (tmp_path / "llava.json").read_bytes() == (out / "llava.json").read_bytes()
    _open_ended_checks(json.loads((tmp_path / "llava_open_ended.json").read_text()), read_qa(built))
    bad = runner.invoke(app, ["export", str(tmp_path / "x"), "-f", "llava", "--questions", "open",
                              "--root", str(built)])
    assert bad.exit_code != 0 and "--questions" in bad.output
