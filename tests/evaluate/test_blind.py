"""The blind answerer: chance where options carry no information, high where the text gives it away."""

from __future__ import annotations

import random

import pytest

from dreamframe_assets.core.params import BlindParams, EvalScoresParams, LLMParams
from dreamframe_assets.core.plot import QA
from dreamframe_assets.core.vocabulary import CLOTHING_COLOURS, OBJECTS
from dreamframe_assets.evaluate.blind import BlindAnswerer
from dreamframe_assets.models.llm import CachedChat, Completion


def _qa(i: int, question: str, options: list[str], answer_index: int) -> QA:
    return QA(movie_id="m", qa_id=f"m-q{i:04d}", level="grounded", qtype="colour", question=question,
              answer=options[answer_index], options=tuple(options), answer_index=answer_index,
              evidence_frames=(0,), subject=None, source="test")


def _accuracy(qas: list[QA], picks: list[int]) -> float:
    return sum(p == qa.answer_index for qa, p in zip(qas, picks)) / len(qas)


@pytest.fixture(scope="module")
def blind(tmp_path_factory) -> BlindAnswerer:
    """The embedding backend with the real MiniLM (loaded once for the module)."""
    folder = tmp_path_factory.mktemp("blind")
    return BlindAnswerer(EvalScoresParams(), cache_dir=folder / "embeddings", llm_cache_dir=folder / "llm")


def test_chance_when_options_carry_no_information(blind):
    rng = random.Random(0)
    qas = []
    for i in range(400):
        question = f"What colour is the person on the {rng.choice(['left', 'middle', 'right'])} wearing in keyframe {rng.randint(1, 30)}?"
        options = rng.sample(sorted(CLOTHING_COLOURS), 4)  # the answer is whichever sits at a uniform position
        qas.append(_qa(i, question, options, rng.randrange(4)))
    picks = blind.answer(None, qas, None)  # no plot, no images: it never needs them
    assert all(0 <= p < 4 for p in picks)
    assert abs(_accuracy(qas, picks) - 0.25) <= 0.08


def test_wins_when_the_answer_echoes_the_question(blind):
    rng = random.Random(1)
    people = ["the baker", "the lighthouse keeper", "the old pianist", "the young inventor", "the detective"]
    places = ["the harbor", "the night market", "the library", "the snowy mountain", "the railway station"]
    qas = []
    for i in range(60):
        person, place = rng.choice(people), rng.choice(places)
        question = f"Why does {person} go to {place} at dawn?"
        answer = f"Because {person} has to reach {place} at dawn before anyone else does."
        options = rng.sample(OBJECTS, 3)  # short distractors that share nothing with the question
        at = rng.randrange(4)
        options.insert(at, answer)
        qas.append(_qa(i, question, options, at))
    assert _accuracy(qas, blind.answer(None, qas, None)) > 0.8


def test_exact_ties_are_broken_by_seed_not_position(blind):
    qas = [_qa(i, "Which one?", ["the same"] * 4, i % 4) for i in range(40)]
    picks = blind.answer(None, qas, None)
    assert picks == blind.answer(None, qas, None)  # deterministic
    assert len(set(picks)) > 1


class FakeClient:
    """Answers each request by rule; records the prompts it was sent."""

    def __init__(self, replies: list[str]):
        self.params = LLMParams(model="fake")
        self.replies = replies
        self.prompts: list[str] = []

    def identity(self) -> str:
        return "fake|blind"

    def complete(self, requests, json_schema=None, seed=None, on_done=None):
        out = []
        for i, messages in enumerate(requests):
            self.prompts.append(messages[0]["content"])
            done = Completion(self.replies[len(self.prompts) - 1], 10, 2)
            if on_done:
                on_done(i, done)
            out.append(done)
        return out


def test_llm_backend_sees_question_and_options_only(tmp_path):
    params = EvalScoresParams(blind=BlindParams(backend="llm"))
    answerer = BlindAnswerer(params, cache_dir=tmp_path / "embeddings", llm_cache_dir=tmp_path / "llm")
    client = FakeClient(['{"answer": "B"}', "C", "no idea"])
    answerer._chat = CachedChat(client, tmp_path / "llm")
    qas = [_qa(i, f"Question {i}?", [f"opt {i}{x}" for x in "wxyz"], 0) for i in range(3)]
    assert answerer.answer(None, qas, None) == [1, 2, -1]
    assert "Question 0?" in client.prompts[0] and "A. opt 0w" in client.prompts[0] and "D. opt 0z" in client.prompts[0]
    assert answerer.identity().startswith("blind|llm|fake|blind|") and answerer.identity().endswith("|blind/1")
    assert answerer.answer(None, qas, None) == [1, 2, -1]  # from the response cache
    assert len(client.prompts) == 3
