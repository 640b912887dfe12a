"""Training exports: the built dataset in the formats video-LLM trainers read.

Each ``export_*`` reads the built stages (``movie_plots``, ``keyframes``,
``qa_pairs``, ``eval_scores``) and writes one format into ``out``; every path
it writes into a record is relative to ``out``, so the folder can be moved or
uploaded as it is:

- ``movies/<movie_id>.mp4`` (+ ``.srt``): the keyframes as an H.264 video (``export_mp4``);
- ``frames/<movie_id>/00000.png ...``: the keyframe PNGs as drawn (``export_frames``);
- ``llava.json`` / ``llava_open_ended.json``: LLaVA / LLaMA-VID conversations, multiple
  choice / open-ended, as ``questions`` asks (``export_llava``);
- ``videochatgpt_qa.json``: Video-ChatGPT open-ended QA (``export_videochatgpt``);
- ``data/train-00000-of-00001.parquet`` + ``README.md``: a Hugging Face dataset (``export_hf``).

Every movie id comes from a table read through its schema (``read_plots``, ``read_qa``),
so it is a file name, never a path; every member of a keyframe shard must be
``<movie_id>/<5 digits>.png`` (``keyframe_member``), and every path written stays
inside ``out`` (``_target``).

Each function returns ``{"format", "files", "written", "counts"}``: the files it
made and those whose bytes changed (``written``), relative to ``out``.
Extracting frames is a copy, so the formats that name frames write them; encoding
videos is the slow part and has its own knobs (fps, subtitles), so only
``export_mp4`` writes them, and ``export_all`` adds it when a requested format
names ``movies/*.mp4``. Files are written atomically and only when their bytes
change, so re-exporting an unchanged dataset rewrites nothing.

The QA table is multiple choice; ``questions`` (``QUESTIONS``) picks the form the LLaVA
conversations take and the dataset card describes: ``"multiple_choice"`` (the default),
``"open_ended"`` or ``"both"``. Open-ended exports (and Video-ChatGPT, which is always
open-ended) ask the question alone and answer with ``answer_sentence(qa.answer)``; they
leave out the questions that name their options ("Which of these ...", see ``needs_options``).
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xxhash
import yaml
from PIL import Image, ImageDraw, ImageFont

from ..core.cache import write_if_changed
from ..core.params import PARAMS_FILE, Params
from ..core.plot import QA, MoviePlot
from ..core.schemas import ContractError
from ..core.store import (
    keyframe_member,
    read_keyframe_pngs,
    load_image,
    read_plots,
    read_table,
    stage_dir,
)
from ..evaluate.choice import LETTERS
from ..models.embed import embedder_name
from ..models.llm import load_prompt, prompt_names
from ..pipeline.backends import checked_params

FORMATS = ("llava", "videochatgpt", "hf", "mp4")
QUESTIONS = ("multiple_choice", "open_ended", "both")
LLAVA_FILES = {"multiple_choice": "llava.json", "open_ended": "llava_open_ended.json"}
HF_PARQUET = "data/train-00000-of-00001.parquet"
SUBTITLE_DIM = 0.35  # what is left of the picture's brightness under the subtitle band

Summary = dict[str, Any]
Progress = Callable[[int, int], None]


# ---------------------------------------------------------------- paths
def video_path(movie_id: str) -> str:
    return f"movies/{movie_id}.mp4"


def frames_folder(movie_id: str) -> str:
    return f"frames/{movie_id}"


def frame_path(movie_id: str, frame_index: int) -> str:
    return f"{frames_folder(movie_id)}/{frame_index:05d}.png"


def _target(out: Path, rel: str) -> Path:
    """``out / rel``, refused where ``rel`` could leave ``out`` (absolute, or with a ``..`` part)."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or not parts or ".." in parts:
        raise ValueError(f"export: refusing to write {rel!r}: every path written stays inside {out}")
    return Path(out) / rel


def _write(out: Path, rel: str, data: bytes, files: list[str], written: list[str]) -> None:
    target = _target(out, rel)
    files.append(rel)
    if write_if_changed(target, data):
        written.append(rel)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=1, ensure_ascii=False) + "\n").encode()


def _read_qa(root: Path) -> list[QA]:
    from ..pipeline.steps import read_qa

    return read_qa(root)


def _shard(root: Path, movie_id: str) -> dict[str, bytes]:
    """One movie's keyframe PNGs by member name, in frame order, each checked against its
    recorded checksum (``core.store.read_keyframe_pngs``: a damaged shard is never exported)."""
    return {keyframe_member(movie_id, i): data for i, data in enumerate(read_keyframe_pngs(root, movie_id))}


def _question_forms(questions: str) -> tuple[str, ...]:
    """The forms ``questions`` writes, in order; a ValueError for an unknown mode."""
    if questions not in QUESTIONS:
        raise ValueError(f"questions: {questions!r} is not one of {', '.join(map(repr, QUESTIONS))}")
    return ("multiple_choice", "open_ended") if questions == "both" else (questions,)


# ---------------------------------------------------------------- open-ended answers
OPTION_WORDING = re.compile(r"\b(?:of these|of the following|the options)\b", re.I)
CLOSING = "\"'\u201d\u2019)]"


def answer_sentence(text: str) -> str:
    """The free-text answer of an open-ended question: the option text as it is, with a
    capital first letter and a final period if it ends with none ("hugging" -> "Hugging.")."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.rstrip(CLOSING)[-1:] in (".", "!", "?") else text + "."


def needs_options(qa: QA) -> bool:
    """Whether the question names its options ("Which of these happens first in the movie?",
    "... of the following ...", "... the options ..."): without them it has no single answer
    (the first of four events is not the movie's first), so it is multiple choice only."""
    return bool(OPTION_WORDING.search(qa.question))


def open_ended(qas: list[QA]) -> list[QA]:
    """The QAs an open-ended export asks: those that do not need their options."""
    return [qa for qa in qas if not needs_options(qa)]


# ---------------------------------------------------------------- frames
def export_frames(root: Path, out: Path) -> Summary:
    """Every movie's keyframes as ``frames/<movie_id>/00000.png ...``: the drawn PNG bytes, not re-encoded."""
    files: list[str] = []
    written: list[str] = []
    movies = list(read_plots(root))
    for mid in movies:
        for i, data in enumerate(_shard(root, mid).values()):
            _write(out, frame_path(mid, i), data, files, written)
    return {"format": "frames", "files": files, "written": written,
            "counts": {"movies": len(movies), "frames": len(files)}}


# ---------------------------------------------------------------- LLaVA
def multiple_choice_prompt(qa: QA) -> str:
    """The human turn: the video token, the question, the lettered options, the instruction."""
    options = "\n".join(f"{LETTERS[i]}. {opt}" for i, opt in enumerate(qa.options))
    return f"<video>\n{qa.question}\n{options}\nAnswer with the option's letter."


def open_ended_prompt(qa: QA) -> str:
    """The human turn of an open-ended conversation: the video token and the question alone."""
    return f"<video>\n{qa.question}"


def llava_turns(qa: QA, form: str) -> list[dict[str, str]]:
    """The human and gpt turns of ``qa`` asked in ``form`` ("multiple_choice" or "open_ended")."""
    if form == "multiple_choice":
        human, gpt = multiple_choice_prompt(qa), f"{LETTERS[qa.answer_index]}. {qa.answer}"
    else:
        human, gpt = open_ended_prompt(qa), answer_sentence(qa.answer)
    return [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]


def export_llava(root: Path, out: Path, frames_as: str = "folder", questions: str = "multiple_choice") -> Summary:
    """LLaVA conversations: one two-turn conversation per QA, pointing at the movie's video or frame folder.

    ``frames_as="video"`` names ``movies/<movie_id>.mp4`` (written by ``export_mp4``);
    ``"folder"`` names ``frames/<movie_id>`` and writes the PNGs there.

    ``questions`` picks the form, and each form has its own file, whatever else is asked:

    - ``"multiple_choice"`` (default): ``llava.json``, the question with its lettered
      options and the instruction to answer with a letter; the gpt turn is "B. <option>".
    - ``"open_ended"``: ``llava_open_ended.json``, the question alone; the gpt turn is
      ``answer_sentence(qa.answer)`` (for the overview question, four of its events told in story order).
      Questions that name their options (``needs_options``) are left out.
    - ``"both"``: both files. This is how LLaVA-Video-178K ships its QA: separate
      ``*_mc_*_qa_processed.json`` and ``*_oe_*_qa_processed.json`` files that a trainer's
      data mixture lists (and weights) one by one. The two forms are not mixed within a
      file or a conversation: a mixed file could not be weighted or left out, and a
      conversation asking the same question twice would give its answer away.
    """
    if frames_as not in ("folder", "video"):
        raise ValueError(f"frames_as: {frames_as!r} is not 'folder' or 'video'")
    forms = _question_forms(questions)
    out = Path(out)
    files: list[str] = []
    written: list[str] = []
    counts: dict[str, int] = {}
    if frames_as == "folder":
        frames = export_frames(root, out)
        files += frames["files"]
        written += frames["written"]
        counts["frames"] = frames["counts"]["frames"]
    qas = _read_qa(root)
    total = 0
    for form in forms:
        asked = qas if form == "multiple_choice" else open_ended(qas)
        records = [
            {"id": qa.qa_id,
             **({"video": video_path(qa.movie_id)} if frames_as == "video" else {"frames": frames_folder(qa.movie_id)}),
             "conversations": llava_turns(qa, form)}
            for qa in asked
        ]
        _write(out, LLAVA_FILES[form], _json_bytes(records), files, written)
        counts[form] = len(records)
        if form == "open_ended":
            counts["needs_options"] = len(qas) - len(asked)
        total += len(records)
    return {"format": "llava", "files": files, "written": written, "counts": {"records": total, **counts}}


# ---------------------------------------------------------------- Video-ChatGPT
def export_videochatgpt(root: Path, out: Path) -> Summary:
    """``videochatgpt_qa.json``: open-ended QA per video: the question without options and
    ``answer_sentence(qa.answer)``, as in the open-ended LLaVA export (and, as there, without
    the questions that name their options)."""
    qas = _read_qa(root)
    records = [
        {"video_id": qa.movie_id, "video": video_path(qa.movie_id), "question": qa.question,
         "answer": answer_sentence(qa.answer), "qa_id": qa.qa_id, "qtype": qa.qtype}
        for qa in open_ended(qas)
    ]
    files: list[str] = []
    written: list[str] = []
    _write(Path(out), "videochatgpt_qa.json", _json_bytes(records), files, written)
    return {"format": "videochatgpt", "files": files, "written": written,
            "counts": {"records": len(records), "needs_options": len(qas) - len(records)}}


# ---------------------------------------------------------------- Hugging Face
def export_hf(root: Path, out: Path, license: str = "cc-by-4.0", questions: str = "multiple_choice") -> Summary:
    """A folder ``datasets.load_dataset`` reads: one Parquet shard and a dataset card.

    Rows name ``movies/<movie_id>.mp4`` (written by ``export_mp4``) and the evidence
    frames' PNGs, which are written here. Every row holds both forms, whatever
    ``questions`` is: ``options`` / ``answer_index`` for multiple choice and
    ``open_answer`` (``answer_sentence(answer)``; null where the question names its
    options) for open-ended; ``questions`` only says, in the card, which form this
    export is for and how to read it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    _question_forms(questions)
    out = Path(out)
    qas = _read_qa(root)
    frames = export_frames(root, out)
    table = pa.table(
        {
            "movie_id": [q.movie_id for q in qas],
            "qa_id": [q.qa_id for q in qas],
            "level": [q.level for q in qas],
            "qtype": [q.qtype for q in qas],
            "question": [q.question for q in qas],
            "answer": [q.answer for q in qas],
            "options": [list(q.options) for q in qas],
            "answer_index": [q.answer_index for q in qas],
            "open_answer": [None if needs_options(q) else answer_sentence(q.answer) for q in qas],
            "evidence_frames": [list(q.evidence_frames) for q in qas],
            "video": [video_path(q.movie_id) for q in qas],
            "evidence_frame_paths": [[frame_path(q.movie_id, i) for i in q.evidence_frames] for q in qas],
        },
        schema=pa.schema([
            ("movie_id", pa.string()), ("qa_id", pa.string()), ("level", pa.string()), ("qtype", pa.string()),
            ("question", pa.string()), ("answer", pa.string()), ("options", pa.list_(pa.string())),
            ("answer_index", pa.int64()), ("open_answer", pa.string()), ("evidence_frames", pa.list_(pa.int64())),
            ("video", pa.string()), ("evidence_frame_paths", pa.list_(pa.string())),
        ]),
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    files, written = list(frames["files"]), list(frames["written"])
    _write(out, HF_PARQUET, buf.getvalue(), files, written)
    _write(out, "README.md", dataset_card(root, qas, license, questions=questions).encode(), files, written)
    return {"format": "hf", "files": files, "written": written,
            "counts": {"rows": len(qas), "frames": frames["counts"]["frames"]}}


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "n>10M"


def prompt_versions() -> dict[str, str]:
    """The version of each LLM prompt: part of what made an LLM-written dataset."""
    return {name: load_prompt(name).version for name in prompt_names()}


def model_ids(params: Params) -> list[tuple[str, str, str]]:
    """(role, backend, model) of every stage; offline backends use no weights."""
    p = params

    def llm(backend: str, cfg) -> str:
        return "" if backend == "offline" else f"{cfg.model} ({cfg.client})"

    def diffusion(backend: str, cfg) -> str:
        if backend == "offline":
            return ""
        return cfg.model + (f" + refiner {cfg.refiner}" if cfg.refiner else "")

    rows = [
        ("story writer (`movie_plots.writer`)", p.movie_plots.writer, llm(p.movie_plots.writer, p.movie_plots.llm)),
        ("style learner (`style_banks.learner`)", p.style_banks.learner,
         diffusion(p.style_banks.learner, p.style_banks.diffusion)),
        ("keyframe renderer (`keyframes.renderer`)", p.keyframes.renderer,
         diffusion(p.keyframes.renderer, p.keyframes.diffusion)),
        ("QA writer (`qa_pairs.writer`)", p.qa_pairs.writer, llm(p.qa_pairs.writer, p.qa_pairs.llm)),
        ("QA near-duplicate embedder", "embedding", embedder_name(p.qa_pairs.embedder)),
    ]
    e = p.eval_scores
    if "blind" in e.answerers:
        blind = embedder_name(e.embedder) if e.blind.backend == "embedding" else f"{e.blind.llm.model} ({e.blind.llm.client})"
        rows.append(("blind answerer", e.blind.backend, blind))
    if "vlm" in e.answerers:
        rows.append(("VLM answerer", "transformers", e.vlm.model))
    if e.clip_model:
        rows.append(("CLIP (retrieval, style)", "clip", e.clip_model))
    return rows


def _metrics(root: Path) -> dict | None:
    path = stage_dir(root, "eval_scores") / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _questions_text(qas: list[QA], questions: str) -> str:
    """The card's "Questions" section: the form this export is for and which columns to read."""
    forms = _question_forms(questions)
    left_out = sum(needs_options(q) for q in qas)
    parts = [f"This export was made for **{' and '.join(f.replace('_', '-') for f in forms)}** questions "
             f"(`questions: {questions}`). Every row holds both forms:"]
    if "multiple_choice" in forms:
        parts.append("- multiple choice: ask `question` with its lettered `options` (3 or 4); the target is "
                     "`answer_index` (`answer` is that option's text). LLaVA conversations: `llava.json`.")
    if "open_ended" in forms:
        parts.append(f"- open-ended: ask `question` alone; the target is `open_answer` (`answer` as a sentence; "
                     f"for the overview question, four of the movie's events in story order). {left_out} question(s) name their options "
                     f"(\"Which of these ...\") and have no single answer without them: their `open_answer` is "
                     f"null, so leave them out. LLaVA conversations: `llava_open_ended.json`.")
    if forms == ("multiple_choice",):
        parts.append(f"- open-ended use: `question` and `open_answer`, where not null ({left_out} question(s) "
                     f"name their options).")
    elif forms == ("open_ended",):
        parts.append("- multiple-choice use: `question`, `options` and `answer_index`.")
    return parts[0] + "\n\n" + "\n".join(parts[1:])


def dataset_card(root: Path, qas: list[QA], license: str = "cc-by-4.0", questions: str = "multiple_choice") -> str:
    """The dataset card: Hub metadata in the YAML header; what, how big, how made and how good in the body.

    ``questions`` (``QUESTIONS``) is the form the export was made for: the tags, the first
    sentence and the "Questions" section say which.
    """
    root = Path(root)
    forms = _question_forms(questions)
    form_words = " and ".join(f.replace("_", "-") for f in forms)
    params = checked_params(root)
    movies = read_plots(root)
    keyframes = read_table(stage_dir(root, "keyframes") / "keyframes.parquet", "keyframes").height
    header = {
        "license": license,
        "task_categories": ["visual-question-answering", "video-text-to-text"],
        "language": ["en"],
        "tags": ["synthetic", "video-qa", *(f.replace("_", "-") for f in forms), "dreamframe"],
        "pretty_name": "DreamFrame synthetic video QA",
        "size_categories": [size_category(len(qas))],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    }
    mix = Counter(q.qtype for q in qas)
    mix_rows = [(t, n, f"{n / len(qas):.3f}") for t, n in sorted(mix.items())] if qas else []
    models = [(role, backend, model or "none (no weights)") for role, backend, model in model_ids(params)]
    prompts = list(prompt_versions().items())
    params_text = (root / PARAMS_FILE).read_text().rstrip("\n")

    metrics = _metrics(root)
    if metrics is None:
        metrics_text = "Not computed: materialize `eval_scores` before exporting."
    else:
        rows = [(f"accuracy.{name}.overall", f"{acc['overall']:.4f}") for name, acc in metrics["accuracy"].items()]
        rows.append(("language_bias_gap", f"{metrics['language_bias_gap']:.4f}"))
        for group in ("map", "style_consistency", "diversity"):
            rows += [(f"{group}.{k}", f"{v:.4f}") for k, v in sorted(metrics.get(group, {}).items())]
        metrics_text = (
            "From `data/eval_scores/metrics.json` of the build. `blind` and the probes (`frequency`, `length`, "
            "`conversation`, `trained`) see the QA text, never the frames; `language_bias_gap` is the best of "
            "them minus chance accuracy.\n\n" + _table(("metric", "value"), rows)
        )

    body = f"""# DreamFrame synthetic video QA

{form_words.capitalize()} video question answering on synthetic movies made by the DreamFrame
pipeline: a story written in three levels of expansion (substories, tinystories,
keyframes with dialogue), a per-movie style fixed from reference images, every
keyframe drawn in that style, and questions that name the keyframes showing their
answers (`evidence_frames`, 0-based; questions say "keyframe N", 1-based).

## Size

| movies | keyframes | QA pairs |
|---:|---:|---:|
| {len(movies)} | {keyframes} | {len(qas)} |

## Files

- `{HF_PARQUET}`: one row per QA: `movie_id, qa_id, level, qtype, question, answer,
  options (4), answer_index, open_answer, evidence_frames, video, evidence_frame_paths`.
- `video`: `movies/<movie_id>.mp4`, the keyframes as an H.264 video (with a `.srt`
  of the dialogue); `evidence_frame_paths`: the PNGs under `frames/<movie_id>/`.
  Paths are relative to this folder.

```python
from datasets import load_dataset
ds = load_dataset("path/to/this/folder", split="train")
```

## Questions

{_questions_text(qas, questions)}

## Question types

{_table(("qtype", "count", "share"), mix_rows)}

## Models

{_table(("role", "backend", "model"), models)}

## Prompt versions

The LLM prompts (`dreamframe_assets/prompts/`); used only by `llm` backends.

{_table(("prompt", "version"), prompts)}

## Metrics

{metrics_text}

## Generation parameters

The build's `params.yaml`:

```yaml
{params_text}
```

## License

`{license}`
"""
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n" + body


# ---------------------------------------------------------------- mp4
def even_size(image: np.ndarray) -> np.ndarray:
    """Pad the right / bottom edge by one pixel where odd: yuv420p needs even sides."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else image


def _font(height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(9, height // 18))


def _wrap(text: str, font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels (a word longer than the line gets a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def burn_subtitle(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """``lines`` wrapped in white on a darkened band along the bottom of the frame."""
    h, w = image.shape[:2]
    font = _font(h)
    margin = max(2, w // 40)
    wrapped = [part for line in lines for part in _wrap(line, font, w - 2 * margin)]
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    band = min(h, len(wrapped) * line_h + 2 * margin)
    out = image.copy()
    out[h - band:] = (out[h - band:].astype(np.float32) * SUBTITLE_DIM).astype(np.uint8)
    picture = Image.fromarray(out)
    draw = ImageDraw.Draw(picture)
    y = h - band + margin
    for text in wrapped:
        x = max(margin, (w - font.getlength(text)) / 2)
        draw.text((x, y), text, font=font, fill=(255, 255, 255))
        y += line_h
    return np.asarray(picture)


def subtitle_lines(plot: MoviePlot) -> dict[int, list[str]]:
    """``"Name: text"`` of each dialogue line, by the keyframe it follows (shown while that keyframe is)."""
    lines: dict[int, list[str]] = {}
    for line in plot.dialogue:
        lines.setdefault(line.after_frame, []).append(f"{plot.character(line.speaker).name}: {line.text}")
    return lines


def _timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def srt(plot: MoviePlot, fps: float) -> str:
    """SubRip cues: each line for the whole time its keyframe is on screen."""
    cues = []
    for n, line in enumerate(plot.dialogue, start=1):
        start, end = line.after_frame / fps, (line.after_frame + 1) / fps
        name = plot.character(line.speaker).name
        cues.append(f"{n}\n{_timestamp(start)} --> {_timestamp(end)}\n{name}: {line.text}\n")
    return "\n".join(cues)


def encode_mp4(path: Path, images: list[np.ndarray], fps: float) -> bool:
    """H.264 / yuv420p, one video frame per image at ``fps``; True if the file changed.

    The file carries a hash of its images, frame rate and encoder settings (the ``comment``
    tag): a file that already holds the same video is left alone, never re-encoded, so an
    unchanged export rewrites nothing even where the encoder would not give the same bytes
    twice. Otherwise it is encoded to a temporary file beside ``path`` (``+faststart`` moves
    the index to the front, which needs a seekable file) with ``+bitexact``, then moved in.
    """
    import av

    settings = {"crf": "18", "preset": "medium", "threads": "1"}
    h = xxhash.xxh3_128()
    h.update(repr((float(fps), sorted(settings.items()), av.__version__, [img.shape for img in images])).encode())
    for image in images:
        h.update(np.ascontiguousarray(image).tobytes())
    key = f"dreamframe:{h.hexdigest()}"
    if path.exists():
        try:
            with av.open(str(path)) as existing:
                if existing.metadata.get("comment") == key:
                    return False
        except (av.error.FFmpegError, OSError):
            pass  # not a readable video: replaced below
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(tmp, mode="w", format="mp4", options={"fflags": "+bitexact", "movflags": "+faststart"}) as box:
            box.metadata["comment"] = key
            stream = box.add_stream("libx264", rate=rate)
            stream.height, stream.width = images[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            # one encoder thread: x264's threaded rate control depends on timing, so a loaded
            # machine would otherwise give different bytes for the same frames
            stream.options = settings
            stream.thread_count = 1
            for i, image in enumerate(images):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    box.mux(packet)
            for packet in stream.encode():
                box.mux(packet)
        return write_if_changed(path, Path(tmp).read_bytes())
    finally:
        Path(tmp).unlink(missing_ok=True)


def export_mp4(root: Path, out: Path, fps: float = 2.0, subtitles: bool = True,
               on_item: Progress | None = None) -> Summary:
    """``movies/<movie_id>.mp4`` per movie, each keyframe one frame of 1/fps s, and a ``.srt``.

    With ``subtitles`` each dialogue line is also burned into the keyframe it follows,
    for trainers that read pixels only. ``on_item(done, total)`` is called per movie.
    """
    if fps <= 0:
        raise ValueError(f"fps: must be positive (got {fps})")
    out = Path(out)
    plots = read_plots(root)
    files: list[str] = []
    written: list[str] = []
    frames = burned = 0
    for n, (mid, plot) in enumerate(plots.items(), start=1):
        images = [even_size(load_image(data)) for data in _shard(root, mid).values()]
        if len(images) != len(plot.frames):
            raise ContractError(f"keyframes: movie {mid!r} has {len(images)} images for {len(plot.frames)} frames")
        if subtitles:
            for index, lines in subtitle_lines(plot).items():
                images[index] = burn_subtitle(images[index], lines)
                burned += 1
        files.append(video_path(mid))
        if encode_mp4(_target(out, video_path(mid)), images, fps):
            written.append(video_path(mid))
        _write(out, f"movies/{mid}.srt", srt(plot, fps).encode(), files, written)
        frames += len(images)
        if on_item:
            on_item(n, len(plots))
    return {"format": "mp4", "files": files, "written": written,
            "counts": {"movies": len(plots), "frames": frames, "subtitled_frames": burned}}


# ---------------------------------------------------------------- all
def export_all(root: Path, out: Path, formats: list[str], fps: float = 2.0, subtitles: bool = True,
               license: str = "cc-by-4.0", frames_as: str = "folder", questions: str = "multiple_choice",
               on_item: Progress | None = None) -> dict[str, Summary]:
    """Write each of ``formats``; the videos first whenever a format names them.

    "videochatgpt", "hf" and "llava" with ``frames_as="video"`` point at
    ``movies/*.mp4``, so "mp4" is added for them: an export never names a missing file.
    ``questions`` goes to "llava" (which files) and "hf" (what the card says); see ``export_llava``.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(map(repr, unknown))} (known: {', '.join(FORMATS)})")
    _question_forms(questions)  # before anything is written
    wanted = set(formats)
    if wanted & {"videochatgpt", "hf"} or ("llava" in wanted and frames_as == "video"):
        wanted.add("mp4")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Summary] = {}
    if "mp4" in wanted:
        done["mp4"] = export_mp4(root, out, fps=fps, subtitles=subtitles, on_item=on_item)
    if "llava" in wanted:
        done["llava"] = export_llava(root, out, frames_as=frames_as, questions=questions)
    if "videochatgpt" in wanted:
        done["videochatgpt"] = export_videochatgpt(root, out)
    if "hf" in wanted:
        done["hf"] = export_hf(root, out, license=license, questions=questions)
    return done
