"""The one vocabulary: free text from a model or the authors' files mapped onto the plot's words."""

from __future__ import annotations

import pytest

from dreamframe_assets.core.vocabulary import (
    ACTIONS,
    CLOTHING_COLOURS,
    EXPRESSIONS,
    OBJECTS,
    QTYPES,
    drop_lookalikes,
    find_action,
    find_colour,
    find_expression,
    find_object,
    map_action,
    map_colour,
    map_expression,
    map_object,
)


@pytest.mark.parametrize("word, action", [("walking", "walk"), ("Crouches", "squat"), ("is sitting down", "sit"),
                                          ("embracing", "hug"), ("gazing out", "look"), ("whispers", "talk")])
def test_action_synonyms(word, action):
    assert map_action(word) == action


def test_vocabulary_mapping():
    with pytest.raises(ValueError, match="not one of"):
        map_action("dancing")
    assert map_expression("anxious") == "worried" and map_expression("???") == "calm"
    assert map_object("an old oil lamp") == "lantern" and map_object(None) is None and map_object("spoon") is None
    assert (map_colour("navy"), map_colour("dark crimson"), map_colour("#8a2be2"), map_colour("Teal")) == ("blue", "red", "purple", "teal")
    with pytest.raises(ValueError):
        map_colour("sparkly")
    assert drop_lookalikes("a man who looks like Idris Elba, with a beard") == "a man, with a beard"
    assert drop_lookalikes("a woman resembling a young Meryl Streep in brown") == "a woman in brown"
    assert drop_lookalikes("a boy who looks like a sailor") == "a boy who looks like a sailor"


def test_stems_name_whole_words_where_a_prefix_would_lie():
    assert find_expression("a sunlit glade, a crystal lamp") is None  # not glad, not cry
    assert find_expression("she is glad") == "smiling" and find_expression("crying softly") == "sad"
    assert find_expression("a saddle on the horse") is None and find_expression("sadly") == "sad"
    assert find_object("under a maple tree") is None and find_object("reading a map") == "map"
    assert find_object("wearing glasses") is None and find_object("a glass of water") == "cup"
    assert map_expression("overjoyed") == "smiling"


def test_the_first_word_in_the_text_decides():
    assert find_expression("stern at first, then smiling") == "frowning"
    assert find_action("is standing at his workbench, hammering") == "stand"
    assert find_action("hammering, then standing", allowed=("sit",)) is None
    assert find_object("hammering a piece of metal") == "sword" and find_object("a loaf of bread") == "basket"


def test_clothing_colour_is_what_they_wear():
    assert find_colour("a man with black hair in red") == "red"
    assert find_colour("a woman in royal blue") == "blue" and find_colour("dark navy blue") == "blue"
    assert find_colour("a red shirt with blue trim") == "blue"  # a model's colour value: the last word wins
    assert find_colour("a man with a beard") is None


def test_likenesses_of_people_go_likenesses_of_things_stay():
    assert drop_lookalikes("a man looks like Gerard Butler in brown") == "a man in brown"  # the authors' files
    assert drop_lookalikes("a man looks like actor tom hanks in brown") == "a man in brown"
    assert drop_lookalikes("a woman who looks like emma stone, with red hair") == "a woman, with red hair"


def test_every_mapping_lands_in_the_tables():
    words = ["walking", "kneels", "beams", "weeping", "a brass lamp", "scarlet", "#00ff00", "talks", "a rose"]
    for w in words:
        assert find_action(w) in (*ACTIONS, None)
        assert map_expression(w) in EXPRESSIONS
        assert map_object(w) in (*OBJECTS, None)
        assert find_colour(w) in (*CLOTHING_COLOURS, None)
    assert len(set(QTYPES)) == len(QTYPES) == 12
