"""LLMStoryWriter and LLMQAWriter against a scripted chat server (canned JSON per level)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from dreamframe_assets.core.params import LLMParams, MoviePlotsParams, QAPairsParams
from dreamframe_assets.core.plot import as_row, field_value
from dreamframe_assets.core.schemas import validate
from dreamframe_assets.core.store import PLOT_TABLES, plot_rows, rows_table
from dreamframe_assets.core.vocabulary import ACTIONS, OVERVIEW_QUESTION
from dreamframe_assets.models.llm import QuarantineError
from dreamframe_assets.qa.llm import LLMQAWriter
from dreamframe_assets.qa.oracle import OracleAnswerer
from dreamframe_assets.story.llm import LLMStoryWriter

from ..models.test_llm import ChatServer, is_repair

L, M, N = 2, 2, 3
THEME = "A lighthouse keeper finds a message in a bottle during a winter storm"
LOCATIONS = [
    "the old lighthouse", "the harbor pier", "the pebble beach", "the attic bedroom", "the pine forest",
    "the cobbled street", "the corner shop", "the town hall", "the mountain pass", "the walled garden",
    "the village library", "the fish market",
]


def level1_answer() -> dict:
    return {
        "title": "The Bottle and the Storm",
        "genre": "drama",
        "overview": "Mara keeps the old lighthouse. A message in a bottle leads her and Tomas to the harbor.",
        "style_description": "moody, misty, muted",
        "style_keyword": "Dramatic!",
        "locations": LOCATIONS,
        "characters": [
            {"name": "Mara", "appearance": "A tall woman who looks like Meryl Streep, with short grey hair", "clothing_colour": "crimson"},
            {"name": "Tomas", "appearance": "a young man with curly black hair", "clothing_colour": "navy"},
        ],
        "substories": [
            {"title": "The Bottle", "scene": "The Old Lighthouse", "content": "Mara finds a bottle on the rocks.",
             "cause": "a winter storm washed a bottle ashore", "outcome": "Mara reads the message inside"},
            {"title": "The Harbor", "scene": "harbor pier", "content": "Mara and Tomas search the harbor.",
             "cause": "Mara reads the message inside", "outcome": "they find the sender's boat"},
        ],
        "qa": [
            {"substory": 1, "qtype": "why", "question": 'Why does "The Bottle" begin?',
             "answer": "Because a winter storm washed a bottle ashore.", "answer_from": "cause"},
            {"substory": 2, "qtype": "where", "question": 'Where does "The Harbor" take place?',
             "answer": "It takes place on the harbor pier.", "answer_from": "scene"},
        ],
    }


def level2_answer(content: str) -> dict:
    place = "the old lighthouse" if '"The Bottle"' in content else "the harbor pier"
    return {
        "tinystories": [
            {"title": "Arrival", "scene": place, "content": "Mara arrives and looks around."},
            {"title": "A Closer Look", "scene": "the pebble beach", "content": "Mara and Tomas study the find."},
        ],
        "qa": {"tinystory": 2, "qtype": "where", "question": 'Where is "A Closer Look"?',
               "answer": "On the pebble beach.", "answer_from": "tinystory scene"},
    }


def level3_answer() -> dict:
    return {
        "frames": [
            {"characters": ["Mara"], "action": "looking", "expression": "anxious", "held_object": None,
             "prompt": "At the wrong place, Mara is looking at the sea, with a worried expression."},
            {"characters": ["Mara"], "action": "carrying", "expression": "determined", "held_object": "oil lamp",
             "prompt": "Mara holds a lamp."},
            {"characters": ["Mara", "Tomas"], "action": "embrace", "expression": "smiling", "held_object": None,
             "prompt": "In the harbor, Mara and Tomas hug, with a smiling expression."},
        ],
        "dialogue": [
            {"after_frame": 3, "speaker": "Tomas", "text": "You found it!"},
            {"after_frame": 1, "speaker": "Mara", "text": "Something is out there."},
        ],
        "qa": [
            {"qtype": "how", "question": "How does Mara feel at first?", "answer": "She looks worried.",
             "answer_from": "frame expression", "evidence_frames": [1]},
            {"qtype": "what", "question": "What is Mara doing?", "answer": "She is holding a lantern.",
             "answer_from": "frame action", "evidence_frames": [2, 3]},
        ],
    }


def qa_answer(content: str) -> dict:
    first = int(content.split("- keyframe ")[1].split(":")[0])
    return {"qas": [
        {"qtype": "what", "question": f"What does Mara do in keyframe {first + 1}?", "answer_from": "frame action",
         "options": ["She is holding a lantern.", "She is sitting.", "She is squatting.", "She is hugging a friend."],
         "correct": 1, "evidence_frames": [first + 1]},
        {"qtype": "how", "question": "How does she look?", "answer_from": "frame expression",
         "options": ["Happy", "She is worried.", "Sad", "Angry"], "correct": 2, "evidence_frames": [first]},
        {"qtype": "who", "question": "Bad qtype", "answer_from": "frame action",
         "options": ["a", "b", "c", "d"], "correct": 1, "evidence_frames": [first]},
    ]}


def canned(body: dict, n: int) -> str:
    """The right answer for each level, told apart by the JSON schema's name."""
    level = body["response_format"]["json_schema"]["name"]
    content = body["messages"][-1]["content"]
    return json.dumps({"level1": level1_answer, "level2": lambda: level2_answer(content), "level3": level3_answer,
                       "qa": lambda: qa_answer(content)}[level]())


def writer_for(server: ChatServer, cache: Path, **llm) -> LLMStoryWriter:
    params = MoviePlotsParams(writer="llm", llm=LLMParams(base_url=server.base_url, model="m", **llm))
    writer = LLMStoryWriter(params, cache)
    writer.chat.client.backoff = 0.0
    return writer


def check_tables(plot) -> None:
    for name, rows in plot_rows(plot).items():
        validate(name, rows_table(name, rows), where=name)
    assert set(plot_rows(plot)) == set(PLOT_TABLES)


def test_llm_story_follows_the_rules(tmp_path: Path):
    with ChatServer(canned) as server:
        writer = writer_for(server, tmp_path)
        plot = writer.write(THEME, "m1", 0, L, M, N)
        assert len(server.bodies) == 1 + L + L * M
        usage = writer.usage()
    check_tables(plot)
    movie = plot.movie
    assert movie.theme == THEME and movie.style_keyword == "Dramatic" and movie.genre == "Drama"
    assert [c.clothing_colour for c in movie.characters] == ["red", "blue"]
    assert movie.characters[0].appearance == "a tall woman, with short grey hair in red"  # no look-alike
    assert [loc.kind for loc in movie.locations][:3] == ["lighthouse", "harbor", "beach"]
    assert [s.scene for s in plot.substories] == ["the old lighthouse", "the harbor pier"]
    assert len(plot.tinystories) == L * M and len(plot.frames) == L * M * N
    assert [f.frame_index for f in plot.frames] == list(range(L * M * N))
    tiny_scene = {(t.substory_index, t.tinystory_index): t.scene for t in plot.tinystories}
    for f in plot.frames:
        assert f.location == tiny_scene[(f.substory_index, f.tinystory_index)]
        assert f.prompt.startswith(f"In {f.location}, ")
        assert "Mara" not in f.prompt and "Tomas" not in f.prompt and f.action in ACTIONS
    assert [(f.action, f.expression, f.held_object) for f in plot.frames[:3]] == [
        ("look", "worried", None), ("hold", "determined", "lantern"), ("hug", "smiling", None)]
    assert [d.after_frame for d in plot.dialogue][:2] == [0, 2] and [d.line_index for d in plot.dialogue] == list(range(len(plot.dialogue)))
    overview = plot.qa[0]
    assert (overview.question, overview.answer) == (OVERVIEW_QUESTION, movie.overview)
    assert overview.evidence_frames == tuple(range(L * M * N))
    levels = [q.level for q in plot.qa]
    assert levels.count("level1") == 2 and levels.count("level2") == L and levels.count("level3") == 2 * L * M
    for qa in plot.qa[1:]:  # every answer holds the plot field its source names
        assert field_value(plot, qa.source).strip().rstrip(".").lower() in qa.answer.lower(), qa
        assert qa.evidence_frames
    assert plot.quarantine == ()
    assert usage["requests_sent"] == len(server.bodies) and usage["cache_hits"] == 0 and usage["prompt_tokens"] > 0


def test_second_write_sends_nothing(tmp_path: Path):
    with ChatServer(canned) as server:
        first = writer_for(server, tmp_path).write(THEME, "m1", 0, L, M, N)
        sent = len(server.bodies)
        writer = writer_for(server, tmp_path)
        second = writer.write(THEME, "m1", 0, L, M, N)
        assert len(server.bodies) == sent
        assert writer.usage()["requests_sent"] == 0 and writer.usage()["cache_hits"] == sent
        writer.write(THEME, "m1", 1, L, M, N)  # another movie seed: another sample
        assert len(server.bodies) == 2 * sent
    assert asdict(first) == asdict(second)


def test_identity_names_client_sampling_and_prompt_versions(tmp_path: Path):
    with ChatServer(canned) as server:
        identity = writer_for(server, tmp_path, temperature=0.3).identity()
    assert server.base_url in identity and '"temperature": 0.3' in identity
    assert all(f"{name}/1" in identity for name in ("level1", "level2", "level3", "repair"))


def test_malformed_level1_is_repaired_once(tmp_path: Path):
    def handler(body, n):
        if body["response_format"]["json_schema"]["name"] == "level1" and not is_repair(body):
            return "Here is your movie! title: The Bottle, overview: ..."
        return canned(body, n)

    with ChatServer(handler) as server:
        plot = writer_for(server, tmp_path).write(THEME, "m1", 0, L, M, N)
    assert sum(is_repair(b) for b in server.bodies) == 1
    assert len(server.bodies) == 2 + L + L * M
    check_tables(plot)


def test_rule_breaking_frames_are_repaired(tmp_path: Path):
    def handler(body, n):
        if body["response_format"]["json_schema"]["name"] == "level3" and not is_repair(body):
            bad = level3_answer()
            bad["frames"][0]["action"] = "dancing"  # not one of the eight
            return json.dumps(bad)
        return canned(body, n)

    with ChatServer(handler) as server:
        plot = writer_for(server, tmp_path).write(THEME, "m1", 0, L, M, N)
    repairs = [b for b in server.bodies if is_repair(b)]
    assert len(repairs) == L * M and "dancing" in repairs[0]["messages"][0]["content"]
    assert plot.quarantine == ()


def test_failed_tinystory_is_quarantined_and_the_movie_goes_on(tmp_path: Path):
    def handler(body, n):
        content = body["messages"][-1]["content"]
        if body["response_format"]["json_schema"]["name"] == "level3" and '"A Closer Look"' in content:
            return "no frames today"
        return canned(body, n)

    with ChatServer(handler) as server:
        plot = writer_for(server, tmp_path).write(THEME, "m1", 0, L, M, N)
    check_tables(plot)
    assert len(plot.frames) == (L * M - 1) * N
    assert [f.frame_index for f in plot.frames] == list(range(len(plot.frames)))
    assert len(plot.tinystories) == L * M  # the tinystory itself stays; only its frames are missing
    [record] = plot.quarantine
    assert record.step == "level3:0.1" and record.response == "no frames today" and "no JSON" in record.reason
    assert "A Closer Look" in json.loads(record.prompt)[0]["content"]


def test_level1_failure_quarantines_the_movie(tmp_path: Path):
    with ChatServer(lambda body, n: "```json\n{\"title\": \"only a title\"}\n```") as server:
        with pytest.raises(QuarantineError) as err:
            writer_for(server, tmp_path).write(THEME, "m1", 0, L, M, N)
    [record] = err.value.records
    assert record.step == "level1" and record.stage == "movie_plots" and record.movie_id == "m1"
    assert THEME in json.loads(record.prompt)[0]["content"]
    assert "only a title" in record.response and "overview" in record.reason
    assert len(server.bodies) == 2  # the request and one repair


def test_qa_without_its_field_is_quarantined_alone(tmp_path: Path):
    def handler(body, n):
        if body["response_format"]["json_schema"]["name"] == "level1":
            answer = level1_answer()
            answer["qa"][0]["answer"] = "Because of the weather."  # does not quote the cause
            return json.dumps(answer)
        return canned(body, n)

    with ChatServer(handler) as server:
        plot = writer_for(server, tmp_path).write(THEME, "m1", 0, L, M, N)
    [record] = plot.quarantine
    assert record.step == "level1:qa1" and "word for word" in record.reason
    assert "Because of the weather." in record.response
    assert sum(q.level == "level1" for q in plot.qa) == 1


def test_llm_qa_writer(tmp_path: Path):
    with ChatServer(canned) as server:
        plot = writer_for(server, tmp_path).write(THEME, "m1", 0, L, M, N)
        params = QAPairsParams(writer="llm", llm=LLMParams(base_url=server.base_url, model="m"))
        writer = LLMQAWriter(params, tmp_path)
        batch = writer.write(plot, 1.0, 0.3, 0)
        sent = len(server.bodies)
        again = LLMQAWriter(params, tmp_path).write(plot, 1.0, 0.3, 0)
        assert len(server.bodies) == sent and again == batch
    rows = [as_row(q) for q in batch.qas]
    validate("qa", rows_table("qa", rows), where="qa")
    llm = [q for q in batch.qas if q.level == "level3" and q.source.startswith("frame:") and q.question.startswith(("What does", "How does she"))]
    assert llm, "the model's questions are in the batch"
    oracle = OracleAnswerer()
    for q in llm:
        assert oracle.answer_one(plot, q) == q.answer_index
        frames = {f.frame_index for f in plot.frames if (f.substory_index, f.tinystory_index) ==
                  (plot.frames[q.evidence_frames[0]].substory_index, plot.frames[q.evidence_frames[0]].tinystory_index)}
        assert set(q.evidence_frames) <= frames
    assert [q.qa_id for q in batch.qas] == [f"m1-q{i:04d}" for i in range(len(batch.qas))]
    counts = {}
    for q in batch.qas:
        counts[q.qtype] = counts.get(q.qtype, 0) + 1
    assert max(counts.values()) <= max(0.3, 1 / len(counts)) * len(batch.qas)
    bad = [r for r in batch.quarantine if "qtype" in r.reason]
    assert len(bad) == L * M and all(r.stage == "qa_pairs" for r in batch.quarantine)
    assert writer.usage()["requests_sent"] == L * M


def test_unusable_qa_answer_goes_to_the_batch_quarantine(tmp_path: Path, plot):
    with ChatServer(lambda body, n: '{"qas": []}') as server:
        params = QAPairsParams(writer="llm", llm=LLMParams(base_url=server.base_url, model="m"))
        batch = LLMQAWriter(params, tmp_path).write(plot, 1.0, 0.3, 0)
    assert len(batch.quarantine) == len(plot.tinystories)
    assert all("at least one question" in r.reason and r.step.startswith("qa:") for r in batch.quarantine)
    assert batch.qas and all(q.level != "level3" or q.source for q in batch.qas)  # level + grounded QAs remain


def test_tiny_transformers_model_ends_in_quarantine(tiny_model: Path, tmp_path: Path):
    """A random model writes no JSON: level 1 fails, is repaired once, fails again, and is kept."""
    llm = LLMParams(client="transformers", model=str(tiny_model), temperature=0.0, max_tokens=16)
    writer = LLMStoryWriter(MoviePlotsParams(writer="llm", llm=llm), tmp_path)
    with pytest.raises(QuarantineError, match="level 1 could not be written") as err:
        writer.write(THEME, "m1", 0, 1, 1, 1)
    [record] = err.value.records
    assert (record.movie_id, record.stage, record.step) == ("m1", "movie_plots", "level1")
    assert THEME in json.loads(record.prompt)[0]["content"]
    assert "repair answer failed too" in record.reason
    assert writer.usage()["requests_sent"] == 2
    assert "transformers" in writer.identity()


def test_a_server_with_structured_output_is_held_to_the_movies_places_and_people(tmp_path: Path):
    """Level 2's scenes and level 3's people and speakers are enums of the movie's own
    locations and cast; a server that ignores the schema is still read by the word mapping."""
    with ChatServer(canned) as server:
        plot = writer_for(server, tmp_path).write(THEME, "m1", 0, L, M, N)
    schemas = {b["response_format"]["json_schema"]["name"]: b["response_format"]["json_schema"]["schema"]
               for b in server.bodies}
    places = [loc.name for loc in plot.movie.locations]
    names = [c.name for c in plot.movie.characters]
    assert schemas["level2"]["properties"]["tinystories"]["items"]["properties"]["scene"]["enum"] == places
    frame = schemas["level3"]["properties"]["frames"]["items"]["properties"]
    assert frame["characters"]["items"]["enum"] == names == ["Mara", "Tomas"]
    assert schemas["level3"]["properties"]["dialogue"]["items"]["properties"]["speaker"]["enum"] == names
    assert "enum" not in schemas["level1"]["properties"]["substories"]["items"]["properties"]["scene"]
    # the canned level-2 answers name "the harbor pier" among other places: all read into the movie's own
    assert {t.scene for t in plot.tinystories} <= set(places)
