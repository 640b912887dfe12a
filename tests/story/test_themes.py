"""The themes writers: offline, as many themes as asked, the same per seed, none alike; with a
chat model (a scripted server on 127.0.0.1), in batches, repeats, near-duplicates and bad lines dropped."""

from __future__ import annotations

import itertools
import json
import re
import tempfile

import numpy as np
import pytest
import yaml

from dreamframe_assets.core.ids import movie_id_for
from dreamframe_assets.core.params import EmbedderParams, QAPairsParams
from dreamframe_assets.models.embed import TextEmbedder
from dreamframe_assets.models.llm import CachedChat
from dreamframe_assets.story.offline import theme_facts
from dreamframe_assets.story.themes import GOALS, PLACES, ROLES, TIMES, llm_themes, most_themes, offline_themes

from ..models.test_llm import ChatServer, client_for


def slots(theme: str) -> tuple[str, str, str, str]:
    """(role, goal, place, time) read back from a theme."""
    words = theme.split()
    role = next(r for r in ROLES if f" {r} " in f" {' '.join(words[:4])} ")
    found = [next(p for p in phrases if f" {p}" in theme) for phrases in (GOALS, PLACES, TIMES)]
    return role, *found


def test_count_distinct_ids_and_the_same_per_seed():
    themes = offline_themes(1000, seed=0)
    assert len(themes) == 1000 == len(set(themes)) == len({movie_id_for(t) for t in themes})
    assert offline_themes(1000, seed=0) == themes
    assert offline_themes(1200, seed=0)[:1000] == themes  # more themes add to the list
    assert len(set(offline_themes(100, seed=1)) & set(themes)) < 10


def test_no_two_themes_share_three_of_their_four_phrases():
    parts = [slots(t) for t in offline_themes(1000, seed=3)]
    for which in itertools.combinations(range(4), 3):
        keys = [tuple(p[i] for i in which) for p in parts]
        assert len(keys) == len(set(keys)), which


def test_no_two_themes_are_near_duplicates():
    """Measured with the sentence embeddings the QA gates use, against their threshold."""
    themes = offline_themes(300, seed=0)
    vectors = TextEmbedder(EmbedderParams(), tempfile.mkdtemp()).encode(themes)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    assert sims.max() < QAPairsParams().near_duplicate_threshold


def test_the_story_writer_reads_each_themes_protagonist():
    for theme in offline_themes(50, seed=2):
        assert theme_facts(theme).role.split()[-1] == slots(theme)[0], theme  # "young librarian"


def test_more_themes_than_the_phrases_allow_is_one_clear_error():
    with pytest.raises(ValueError, match=f"count: {most_themes() + 1} themes do not fit"):
        offline_themes(most_themes() + 1)


# ---------------------------------------------------------------- with a chat model
LIGHTHOUSE = "A lighthouse keeper finds a message in a bottle during a winter storm"
GOOD = [
    LIGHTHOUSE,
    "A retired sailor teaches a stray dog to swim in a flooded city during the monsoon",
    "Two rival bakers must cook together for a village festival",
    "A shy astronomer chases a falling comet across a desert at dawn",
    "A young chemist hides a stolen formula inside a travelling circus",
    "A grumpy mechanic repairs a robot's heart in a neon city on election night",
    "An elderly violinist plays one last concert on a sinking ferry",
    "A curious girl maps the tunnels under a medieval monastery in winter",
    "A penniless painter forges a royal portrait to save her brother",
    "A night-shift nurse follows a ghostly patient through an abandoned hospital",
    "A beekeeper defends her hives from a swarm of mechanical wasps in 1920s Kyoto",
    "A stubborn farmer races a tornado across the prairie to reach his daughter's wedding",
    "A famous chef loses her sense of taste on the eve of a royal banquet",
    "An exiled prince works as a dishwasher in a busy harbor diner",
]
NEAR = [
    "a lighthouse keeper finds a message in a bottle, during a winter storm.",  # case and punctuation
    "A lighthouse keeper discovers a message in a bottle during a winter storm",  # one word changed
]
INVALID = [
    "A bell\x00rings in an empty school at midnight",  # a control character
    "A story " + "that goes on and on " * 60,  # over 1,000 characters: not one line
    "A chef cooks her #1 recipe for a sultan",  # a themes file would cut it at "#"
]
ANSWERS = {  # request number -> the themes of its answer
    1: GOOD[0:5],
    2: [GOOD[0], NEAR[0], INVALID[0], GOOD[5], GOOD[6]],  # an exact repeat of request 1's first
    3: [NEAR[1], GOOD[7], INVALID[1], GOOD[8], INVALID[2]],
    4: GOOD[9:14],  # round 2: 3 of these are needed
}


def request_number(body: dict) -> int:
    return int(re.search(r"request (\d+)\.", body["messages"][-1]["content"]).group(1))


def scripted(body: dict, n: int) -> str:
    return json.dumps({"themes": ANSWERS[request_number(body)]})


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> TextEmbedder:
    return TextEmbedder(EmbedderParams(), tmp_path_factory.mktemp("embeddings"))


def test_llm_themes_come_in_batches_and_drop_repeats_near_duplicates_and_bad_lines(embedder, tmp_path):
    threshold = QAPairsParams().near_duplicate_threshold
    with ChatServer(scripted) as server:
        chat = CachedChat(client_for(server, concurrency=3), tmp_path / "llm")
        made = llm_themes(chat, 12, seed=0, embedder=embedder, threshold=threshold, batch=5)
        assert made.themes == GOOD[0:12]  # in the order written; round 2 adds what round 1 lacked
        assert (made.requests, made.asked, made.written) == (4, 20, 20)
        assert (made.invalid, made.repeated, made.near_duplicates, made.unreadable) == (3, 1, 2, 0)
        assert sorted(request_number(b) for b in server.bodies) == [1, 2, 3, 4]  # 3 in round 1, 1 in round 2
        prompts = [b["messages"][-1]["content"] for b in server.bodies]
        assert len(set(prompts)) == 4 and all("Write 5 ideas" in p for p in prompts)
        assert all(b["response_format"]["json_schema"]["schema"]["properties"]["themes"]["maxItems"] == 5
                   for b in server.bodies)

        again = CachedChat(client_for(server, concurrency=3), tmp_path / "llm")
        assert llm_themes(again, 12, seed=0, embedder=embedder, threshold=threshold, batch=5) == made
        assert len(server.bodies) == 4 and again.requests_sent == 0  # every answer from the cache

        other = llm_themes(chat, 12, seed=1, embedder=embedder, threshold=threshold, batch=5)
        assert len(server.bodies) == 8 and other.themes == made.themes  # another seed: new requests

    vectors = embedder.encode(made.themes)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    assert sims.max() < threshold
    assert len({movie_id_for(t) for t in made.themes}) == 12


def test_existing_themes_count_as_kept(embedder, tmp_path):
    with ChatServer(scripted) as server:
        chat = CachedChat(client_for(server), tmp_path / "llm")
        made = llm_themes(chat, 4, seed=0, embedder=embedder, threshold=0.95, batch=5, existing=GOOD[:2])
    assert made.themes == GOOD[2:6]


def test_a_model_that_repeats_itself_ends_in_one_clear_error(embedder, tmp_path):
    with ChatServer(lambda body, n: json.dumps({"themes": GOOD[:5]})) as server:
        chat = CachedChat(client_for(server), tmp_path / "llm")
        with pytest.raises(ValueError, match=r"^llm: the model wrote 5 usable themes of 12 asked for in 2 round\(s\) "
                                             r"\(5 requests; 25 themes written.* round 2 kept no new theme"):
            llm_themes(chat, 12, seed=0, embedder=embedder, threshold=0.95, batch=5)
        assert len(server.bodies) == 5  # round 1: 3 requests; round 2: 2 for the 7 missing


@pytest.mark.integration
def test_the_themes_command_writes_llm_themes(project):
    from typer.testing import CliRunner

    from dreamframe_assets.cli import app

    def set_llm(base_url: str) -> None:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["movie_plots"]["llm"].update(base_url=base_url, model="test-model", concurrency=2)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    runner = CliRunner()
    args = ["themes", "--writer", "llm", "--count", "6", "--out", "llm.txt", "--root", str(project)]
    with ChatServer(scripted) as server:
        set_llm(server.base_url)
        run = runner.invoke(app, args)
        assert run.exit_code == 0, run.output
        assert (project / "llm.txt").read_text().splitlines() == [  # 50 asked a request: 5 + 1 of 5 kept
            "# 6 themes written by: dreamframe themes --count 6 --seed 0 --writer llm (model test-model)", *GOOD[:6]]
        assert "100 themes asked in 2 request(s)" in run.stdout and "6 kept; dropped 1 near-duplicates" in run.stdout
        again = runner.invoke(app, args)
        assert again.exit_code == 0 and len(server.bodies) == 2  # the answers are in the project's cache
    run = runner.invoke(app, args)  # the server is gone
    assert run.exit_code == 2 and run.stderr.startswith("error movie_plots.llm.base_url: cannot reach")
