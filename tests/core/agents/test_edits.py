"""SEARCH/REPLACE parsing: a reply read into a hypothesis and blocks, without touching a file."""

from __future__ import annotations

import pytest

from arsup.core.agents.edits import EditBlock, EditError, parse_blocks, parse_hypothesis


def block(path: str, search: str, replace: str) -> str:
    """A reply fragment in the canonical format."""
    return f"{path}\n```python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


# --- parse_hypothesis ------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "HYPOTHESIS: a higher LR converges faster\n",
        "hypothesis:   a higher LR converges faster  \n",
        "**HYPOTHESIS:** a higher LR converges faster\n",
        "**Hypothesis**: a higher LR converges faster\n",
        "## Hypothesis: a higher LR converges faster\n",
        "- HYPOTHESIS: **a higher LR converges faster**\n",
        "Some thoughts first.\r\nHYPOTHESIS: a higher LR converges faster\r\nHYPOTHESIS: second\r\n",
        "**Hypothesis:**\n\na higher LR converges faster\n\ntrain.py\n",
    ],
)
def test_parse_hypothesis_variants(reply: str) -> None:
    assert parse_hypothesis(reply) == "a higher LR converges faster"


@pytest.mark.parametrize("reply", ["", "no label here\n", "My hypothesis is vague\n", "HYPOTHESIS:\n```python\n"])
def test_parse_hypothesis_missing(reply: str) -> None:
    assert parse_hypothesis(reply) == ""


# --- parse_blocks ----------------------------------------------------------

EXPECTED = [EditBlock("train.py", "LR = 0.0005\n", "LR = 0.003\n")]


@pytest.mark.parametrize(
    "reply",
    [
        block("train.py", "LR = 0.0005\n", "LR = 0.003\n"),
        "Change it:\n\n```train.py\n<<<<<<< SEARCH\nLR = 0.0005\n=======\nLR = 0.003\n>>>>>>> REPLACE\n```\n",
        "```python train.py\n<<<<<<< SEARCH\nLR = 0.0005\n=======\nLR = 0.003\n>>>>>>> REPLACE\n```\n",
        "**train.py**\n\n```python\n<<<<<<< SEARCH\nLR = 0.0005\n=======\nLR = 0.003\n>>>>>>> REPLACE\n```\n",
        "`train.py`:\n```\n<<<<<<< SEARCH\nLR = 0.0005\n=======\nLR = 0.003\n>>>>>>> REPLACE\n```\n",
        "### `train.py`\n```python\n<<<<<<< SEARCH\nLR = 0.0005\n=======\nLR = 0.003\n>>>>>>> REPLACE\n```\n",
        "**File:** train.py\n```python\n<<<<<<< SEARCH\nLR = 0.0005\n=======\nLR = 0.003\n>>>>>>> REPLACE\n```\n",
        "train.py\n<<<<< SEARCH\nLR = 0.0005\n=====\nLR = 0.003\n>>>>> REPLACE\n",
        "train.py\n<<<<<<<<< SEARCH\nLR = 0.0005\n=========\nLR = 0.003\n>>>>>>>>> REPLACE\n",
        "train.py\r\n```python\r\n<<<<<<< SEARCH\r\nLR = 0.0005\r\n=======\r\nLR = 0.003\r\n>>>>>>> REPLACE\r\n```\r\n",
    ],
    ids=["canonical", "fence-info", "fence-info-lang", "bold", "backticks", "heading", "file-label",
         "five-markers", "nine-markers", "crlf"],
)
def test_parse_blocks_tolerated_forms(reply: str) -> None:
    assert parse_blocks(reply) == EXPECTED


def test_parse_blocks_several_blocks_share_a_fence_and_keep_order() -> None:
    reply = (
        "HYPOTHESIS: wider\n\nsub/net.py\n```python\n"
        "<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n>>>>>>> REPLACE\n\n"
        "<<<<<<< SEARCH\nB = 1\n=======\n>>>>>>> REPLACE\n```\n\n"
        "Then the model:\n\nmodel.py\n```python\n<<<<<<< SEARCH\n=======\nX = 1\n>>>>>>> REPLACE\n```\n"
    )
    assert parse_blocks(reply) == [
        EditBlock("sub/net.py", "A = 1\n", "A = 2\n"),
        EditBlock("sub/net.py", "B = 1\n", ""),
        EditBlock("model.py", "", "X = 1\n"),
    ]


def test_parse_blocks_keeps_equals_lines_in_replace_and_ignores_prose() -> None:
    reply = "Title\n=======\n\n" + block("train.py", "x = 1\n", '"""Doc\n=======\n"""\n')
    assert parse_blocks(reply) == [EditBlock("train.py", "x = 1\n", '"""Doc\n=======\n"""\n')]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("train.py\n<<<<<<< SEARCH\nLR = 1\n>>>>>>> REPLACE\n", "block 1: line 4 starts another marker"),
        ("train.py\n<<<<<<< SEARCH\nLR = 1\n", "block 1: the reply ends before this block's ======="),
        ("train.py\n<<<<<<< SEARCH\nLR = 1\n=======\nLR = 2\n```\n", "ends before this block's >>>>>>> REPLACE"),
        ("train.py\n<<<<<<< SEARCH\na\n=======\nb\n<<<<<<< SEARCH\n", "block 1: line 6 starts another marker"),
        ("Here is my change:\n```python\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```\n", "block 1: no file path"),
        ("train.py\nLR = 1\n>>>>>>> REPLACE\n", "line 3: a >>>>>>> REPLACE marker without"),
    ],
)
def test_parse_blocks_malformed(reply: str, reason: str) -> None:
    with pytest.raises(EditError) as err:
        parse_blocks(reply)
    assert reason in str(err.value)
    assert "<<<<<<< SEARCH" in str(err.value)  # the format reminder


def test_parse_blocks_none() -> None:
    assert parse_blocks("HYPOTHESIS: nothing to change\n") == []
