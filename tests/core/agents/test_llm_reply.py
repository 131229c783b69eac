"""Reading a model's reply: notebook, hypothesis, blocks, and the whole-file fallback."""

from __future__ import annotations

from arsup.core.agents.llm import parse_notebook, proposal_from_reply, whole_file_fallback

FILES = {"train.py": "LR = 0.001\nWIDTH = 64\nprint('val_bpb: 1.0')\n"}

GOOD = """NOTEBOOK:
- higher LR helped (0002)
- width did nothing
HYPOTHESIS: a higher learning rate trains faster in 5 minutes

train.py
```python
<<<<<<< SEARCH
LR = 0.001
=======
LR = 0.003
>>>>>>> REPLACE
```
"""


def test_good_reply() -> None:
    proposal, reason = proposal_from_reply(GOOD, FILES)
    assert reason == ""
    assert proposal.hypothesis == "a higher learning rate trains faster in 5 minutes"
    assert "LR = 0.003" in proposal.edits and not proposal.files
    assert parse_notebook(GOOD) == "- higher LR helped (0002)\n- width did nothing"


def test_missing_hypothesis_is_a_reason() -> None:
    proposal, reason = proposal_from_reply(GOOD.replace("HYPOTHESIS: ", "Idea: "), FILES)
    assert "no `HYPOTHESIS:` line" in reason
    assert proposal.hypothesis == "(no hypothesis)"


def test_malformed_blocks_are_left_for_the_engine_to_explain() -> None:
    proposal, reason = proposal_from_reply(GOOD.replace(">>>>>>> REPLACE\n", ""), FILES)
    assert reason == "" and proposal.edits.startswith("NOTEBOOK:") and not proposal.files


def test_whole_file_fallback_for_small_files() -> None:
    whole = "HYPOTHESIS: wider\n\ntrain.py\n```python\nLR = 0.001\nWIDTH = 128\nprint('val_bpb: 1.0')\n```\n"
    proposal, reason = proposal_from_reply(whole, FILES)
    assert reason == ""
    assert proposal.files == {"train.py": "LR = 0.001\nWIDTH = 128\nprint('val_bpb: 1.0')\n"}


def test_a_fragment_is_not_taken_for_the_whole_file() -> None:
    big = {"train.py": "".join(f"X{i} = {i}\n" for i in range(100))}
    assert whole_file_fallback("train.py\n```python\nX1 = 2\n```\n", big) == {}


def test_no_notebook_section() -> None:
    assert parse_notebook("HYPOTHESIS: x\n") == ""
