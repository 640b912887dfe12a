"""Reading which option a model's reply picks: one rule for the blind LLM and the VLM."""

from __future__ import annotations

import pytest

from dreamframe_assets.evaluate.choice import parse_choice

FOUR = ("the harbor", "the forest", "the shop", "the hall")


def test_parse_choice():
    assert parse_choice('{"answer": "C"}', FOUR) == 2
    assert parse_choice('```json\n{"answer": "d"}\n```', FOUR) == 3
    assert parse_choice("B", FOUR) == 1
    assert parse_choice("(A) the harbor", FOUR) == 0
    assert parse_choice("I think the answer is D.", FOUR) == 3
    assert parse_choice("E", FOUR) == -1  # only A-D for four options
    assert parse_choice("I cannot tell from the text alone.", FOUR) == -1
    assert parse_choice("", FOUR) == -1


@pytest.mark.parametrize(
    "reply, pick",
    [
        ("B", 1), ("(C)", 2), ("D.", 3), ("Answer: A", 0), ("The answer is C, three.", 2), ("  d", -1),
        ("A tall woman in red", 3),  # "A" is an article here; the option text decides
        ("two", 1), ("There are three people.", 2), ("a tall woman in r", 3),  # cut short by max_new_tokens
        ("", -1), ("I cannot tell", -1), ("E", -1),
    ],
)
def test_reply_parser(reply, pick):
    options = ("one", "two", "three", "a tall woman in red")
    assert parse_choice(reply, options) == pick


def test_reply_parser_prefers_the_longest_option_named():
    assert parse_choice("in the great hall", ("the hall", "the great hall", "the forest", "the shop")) == 1


def test_the_article_a_is_never_read_as_a_letter():
    options = ("one", "two", "a lantern", "a tall woman in red")
    assert parse_choice("The answer is a lantern.", options) == 2
    assert parse_choice("Answer: A tall woman in red", options) == 3
    assert parse_choice("the answer is b", options) == 1 and parse_choice("Answer: A", options) == 0
