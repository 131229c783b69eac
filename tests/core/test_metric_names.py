"""Reading which metric a training script prints from its source, and the goal a metric's name says."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core.metric_names import best, choose, goal_of, printed
from tests.conftest import TOY_TRAIN


@pytest.mark.parametrize(
    ("name", "goal"),
    [
        ("val_bpb", "minimize"), ("val_loss", "minimize"), ("test_error", "minimize"), ("eval_mse", "minimize"),
        ("perplexity", "minimize"), ("val_accuracy", "maximize"), ("val_acc", "maximize"), ("auc", "maximize"),
        ("eval_f1", "maximize"), ("score", "maximize"), ("num_steps", None), ("peak_vram_mb", None),
    ],
)
def test_the_goal_comes_from_the_name(name: str, goal: str | None) -> None:
    assert goal_of(name) == goal


def test_every_way_of_printing_a_name_value_line_is_read() -> None:
    source = (
        'x = 1.0\n'
        'print(f"val_loss: {x:.4f}")\n'
        'print("train_loss:", x)\n'
        'print("val_acc: %.3f" % x)\n'
        'print("test_f1 = {:.2f}".format(x))\n'
        'print(f"step {x} | loss {x}")\n'  # a progress line is not a `name: value` line
        'print(f"---\\nauc: {x}")\n'
        'print("val_mse: " + str(x))\n'
        'print("eval_loss:", x, flush=True)\n'
        'print("test_loss:", x, sep="")\n'  # `test_loss:1.0`: still a line the default pattern reads
        'print("x", x, sep=": ")\n'  # `x: 1.0`, a name that is no score, but a name: value line
    )
    assert [(p.name, p.line) for p in printed(source, "train.py")] == [
        ("val_loss", 2), ("train_loss", 3), ("val_acc", 4), ("test_f1", 5), ("auc", 7), ("val_mse", 8),
        ("eval_loss", 9), ("test_loss", 10), ("x", 11),
    ]
    assert printed("def broken(:\n", "train.py") == []


def test_the_held_out_score_is_chosen_over_training_figures() -> None:
    source = 'print(f"train_loss: {1}")\nprint(f"val_loss: {1}")\nprint(f"num_steps: {1}")\n'
    found = best(printed(source, "train.py"))
    assert found is not None and found.name == "val_loss"
    assert best(printed(TOY_TRAIN, "train.py")).name == "val_bpb"  # type: ignore[union-attr]
    assert best(printed('print(f"num_steps: {1}")\n')) is None


def test_choose_says_what_it_chose_and_how_to_change_it(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text('acc = 0.9\nprint("---")\nprint(f"val_accuracy: {acc:.4f}")\n')
    chosen = choose(tmp_path, ["train.py"], None, None, "val_bpb")
    assert (chosen.name, chosen.goal) == ("val_accuracy", "maximize")
    assert "train.py line 3 prints `val_accuracy: ...`" in chosen.said and "--metric" in chosen.said
    given = choose(tmp_path, ["train.py"], "val_loss", None, "val_bpb")
    assert (given.name, given.goal) == ("val_loss", "minimize")
    empty = choose(tmp_path, ["missing.py"], None, None, "val_bpb")
    assert (empty.name, empty.goal) == ("val_bpb", "minimize") and "found no `name: value`" in empty.said
