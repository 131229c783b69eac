from __future__ import annotations

from arsup.core.changes import diff_texts, find_repeat, signature
from arsup.core.experiment import Experiment, Status

BASE = "LR = 0.001\nWIDTH = 64\n\ndef f():\n    return 1\n"


def _past(diff: str, status: str = Status.DISCARD) -> Experiment:
    return Experiment(id="0007", tag="t", parent="p", hypothesis="h", agent="llm", diff=diff, status=status, metric=1.0)


def _sig(before: str, after: str):
    return signature(diff_texts({"train.py": before}, {"train.py": after}))


def test_same_lines_elsewhere_are_a_repeat() -> None:
    earlier = diff_texts({"train.py": BASE}, {"train.py": BASE.replace("return 1", "return 2")})
    moved = "# a comment that shifts lines\n" + BASE
    candidate = _sig(moved, moved.replace("return 1", "return 2"))
    assert find_repeat(candidate, [_past(earlier)]).id == "0007"


def test_same_constant_value_written_differently_is_a_repeat() -> None:
    earlier = diff_texts({"train.py": BASE}, {"train.py": BASE.replace("LR = 0.001", "LR = 0.003")})
    kept_elsewhere = BASE.replace("WIDTH = 64", "WIDTH = 128")
    candidate = _sig(kept_elsewhere, kept_elsewhere.replace("LR = 0.001", "LR = 3e-3  # bigger"))
    assert candidate.constants == {("LR", "0.003")}
    assert find_repeat(candidate, [_past(earlier)]) is not None


def test_new_values_and_untrained_attempts_are_not_repeats() -> None:
    earlier = diff_texts({"train.py": BASE}, {"train.py": BASE.replace("LR = 0.001", "LR = 0.003")})
    candidate = _sig(BASE, BASE.replace("LR = 0.001", "LR = 0.004"))
    assert find_repeat(candidate, [_past(earlier)]) is None
    same = _sig(BASE, BASE.replace("LR = 0.001", "LR = 0.003"))
    assert find_repeat(same, [_past(earlier, status=Status.INVALID)]) is None


def test_constants_plus_code_is_a_different_idea() -> None:
    earlier = diff_texts({"train.py": BASE}, {"train.py": BASE.replace("LR = 0.001", "LR = 0.003")})
    both = BASE.replace("LR = 0.001", "LR = 0.003").replace("return 1", "return 3")
    assert find_repeat(_sig(BASE, both), [_past(earlier)]) is None


def test_git_diff_headers_and_context_are_ignored() -> None:
    git_diff = (
        "diff --git a/train.py b/train.py\nindex 1..2 100644\n--- a/train.py\n+++ b/train.py\n"
        "@@ -1,2 +1,2 @@\n-LR = 0.001\n+LR = 0.003\n WIDTH = 64\n\\ No newline at end of file\n"
    )
    assert signature(git_diff).lines == {("-", "LR = 0.001"), ("+", "LR = 0.003")}


def test_seed_only_edits_are_recognised() -> None:
    base = "SEED = 42\nLR = 0.001\ntorch.manual_seed(SEED)\n"
    assert _sig(base, base.replace("SEED = 42", "SEED = 137")).only_seeds
    assert _sig(base, base.replace("manual_seed(SEED)", "manual_seed(7)")).only_seeds
    assert not _sig(base, base.replace("SEED = 42", "SEED = 137").replace("0.001", "0.002")).only_seeds


def _tried(id_: str, diff: str, **fields) -> Experiment:
    return Experiment(id=id_, tag="t", parent="p", hypothesis=f"idea {id_}", agent="llm", diff=diff,
                      status=fields.pop("status", Status.DISCARD), **fields)


def _set(name: str, old: str, new: str) -> str:
    return f"--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-{name} = {old}\n+{name} = {new}\n"


def test_going_in_circles_is_the_trailing_run_acting_on_one_place() -> None:
    from arsup.core.changes import circling

    history = [
        _tried("0001", "", status=Status.KEEP, is_baseline=True),
        _tried("0002", _set("WIDTH", "64", "128")),
        _tried("0003", _set("LR", "0.001", "0.002")),
        _tried("0004", _set("LR", "0.001", "0.004"), status=Status.CRASH),
        _tried("0005", "", status=Status.INVALID),  # an edit that never applied neither breaks nor extends it
        _tried("0006", _set("LR", "0.001", "3e-4")),
    ]
    assert [e.id for e in circling(history)] == ["0003", "0004", "0006"]
    history.append(_tried("0007", _set("WIDTH", "64", "96")))
    assert [e.id for e in circling(history)] == ["0007"]


def test_the_same_lines_rewritten_differently_are_one_place_too() -> None:
    from arsup.core.changes import circling

    edit = "--- a/train.py\n+++ b/train.py\n@@ -5 +5 @@\n-    x = F.relu(x)\n+    x = {}\n"
    history = [_tried(f"000{n}", edit.format(body)) for n, body in enumerate(["F.gelu(x)", "F.silu(x)", "x * 2"], 1)]
    assert len(circling(history)) == 3
