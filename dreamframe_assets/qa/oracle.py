"""The oracle: answers every question by looking its answer up again in the plot and
frames, independently of the QA writer. It is the upper bound of every answerer, and
the QA gates drop what it cannot answer: below 100% on grounded questions is a QA bug.
An answerer's ``answer(plot, qas, images)`` returns, per QA, the index of the option
it picks (-1: none).
"""

from __future__ import annotations

from ..core.plot import QA, MoviePlot, answer_key, field_value
from ..core.vocabulary import doing_phrase
from .offline import NUMBER_WORDS, describe_frame, frame_phrases, overview_events, person_at


def _find(options: tuple[str, ...], text: str | None, contains: bool = False) -> int:
    if text is None:
        return -1
    want = answer_key(text)
    hits = [
        i
        for i, o in enumerate(options)
        if (want in o.lower() if contains else answer_key(o) == want)
    ]
    return hits[0] if len(hits) == 1 else -1


class OracleAnswerer:
    """Answers from the plot: reads the frame or plot field a question is about."""

    name = "oracle"

    def answer(self, plot: MoviePlot, qas: list[QA], images=None) -> list[int]:
        return [self.answer_one(plot, qa) for qa in qas]

    def answer_one(self, plot: MoviePlot, qa: QA) -> int:
        if qa.level != "grounded":
            if qa.qtype == "overview":
                told = overview_events(plot, qa.source) if qa.source.startswith("tinystories:") else plot.movie.overview
                return _find(qa.options, told)
            table, index, name = qa.source.split(":", 2)
            phrases = frame_phrases(plot, name) if table == "frame" else None
            if phrases is not None:  # "looks happy" for a smiling frame; else the field as a writer said it
                pick = _find(qa.options, phrases.get(int(index)), contains=True)
                if pick >= 0:
                    return pick
            return _find(qa.options, field_value(plot, qa.source), contains=True)
        frames = [plot.frames[i] for i in qa.evidence_frames if 0 <= i < len(plot.frames)]
        if not frames:
            return -1
        frame = frames[0]
        side = qa.source.rsplit(":", 1)[1] if qa.source.count(":") == 3 else None
        if qa.qtype == "who":
            if side is None:
                return -1
            return _find(qa.options, plot.character(person_at(frame, side)).look)
        if qa.qtype == "count":
            return _find(qa.options, NUMBER_WORDS[len(frame.characters) - 1])
        if qa.qtype == "action":
            return _find(qa.options, doing_phrase(frame.action, frame.held_object))
        if qa.qtype == "location":
            return _find(qa.options, frame.location)
        if qa.qtype == "colour":
            if side is None:
                return -1
            return _find(qa.options, plot.character(person_at(frame, side)).clothing_colour)
        if qa.qtype == "order":
            target = min(frames, key=lambda f: f.frame_index) if qa.subject == "first" else max(
                frames, key=lambda f: f.frame_index
            )
            return _find(qa.options, describe_frame(plot, target))
        if qa.qtype == "speaker":
            speakers = {line.speaker for line in plot.dialogue if f'"{line.text}"' in qa.question}
            if len(speakers) != 1:
                return -1
            return _find(qa.options, plot.character(speakers.pop()).look)
        return -1
