"""Which metric a training script prints, read from its source, and which way that metric should go.

`arsup init` must not write `val_bpb` into a project whose train.py prints
`val_loss: ...`: the baseline would find no metric and end the night. Running
the training to see is what init must not do (minutes, a GPU), so the source is
read statically: every `print` whose whole line is `name: value` (an f-string,
`%` or `.format`, or `print("name:", x)`) is a candidate, the line
`metrics.metric_pattern` reads at run time. The names autoresearch-style
projects use say which one is the score (`val_*`, `*loss`, `*acc*`) and which
way it goes: losses and errors down, accuracies and scores up.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Goal = Literal["minimize", "maximize"]

# Words in a metric's name that say its goal, as autoresearch-style projects name them (val_bpb, val_loss,
# test_acc, eval_f1); the first list wins on a tie (`error_score` is an error).
_DOWN = ("loss", "bpb", "bpc", "error", "err", "mse", "rmse", "mae", "perplexity", "ppl", "nll", "wer", "cer")
_UP = ("accuracy", "acc", "auc", "auroc", "f1", "score", "precision", "recall", "map", "bleu", "rouge", "r2", "iou")
# A name that starts with one of these scores held-out data: preferred over a training figure.
_HELD_OUT = ("val", "valid", "validation", "eval", "test", "dev")
_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*[:=]\s*\{\}\s*$")  # `name: {}`, a value's place marked {}
_PERCENT = re.compile(r"%[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[diouxXeEfFgGrs]")
_BRACES = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class Printed:
    """A `name: value` line a source prints, where: `file` line `line`."""

    name: str
    file: str
    line: int


@dataclass(frozen=True)
class Choice:
    """The metric init writes, and the sentence that says why and how to change it."""

    name: str
    goal: Goal
    said: str


def _words(name: str) -> list[str]:
    return [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]


def goal_of(name: str) -> Goal | None:
    """Which way a metric named `name` should go, from the words in it; None when the name does not say."""
    words = _words(name)
    if any(word in _DOWN for word in words):
        return "minimize"
    if any(word in _UP for word in words):
        return "maximize"
    return None


def _template(node: ast.expr) -> str | None:
    """What a printed expression looks like with each value's place marked `{}`; None where it is no string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "val_loss: " + str(loss)
        left, right = _template(node.left), _template(node.right)
        if left is None and right is None:
            return None
        return ("{}" if left is None else left) + ("{}" if right is None else right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant):
        return _PERCENT.sub("{}", str(node.left.value)).replace("%%", "%")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        inner = node.func.value
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            return _BRACES.sub("{}", inner.value)
    return None


def _printed_line(call: ast.Call) -> str | None:
    """The line a `print(...)` writes, values marked `{}`: one string, or `print("name:", value)`."""
    texts = [_template(arg) for arg in call.args]
    if len(call.args) == 1:
        return texts[0]
    if len(call.args) == 2 and texts[0] is not None and texts[1] is None:
        given = next((k.value for k in call.keywords if k.arg == "sep"), ast.Constant(" "))
        if isinstance(given, ast.Constant) and isinstance(given.value, str):
            return f"{texts[0]}{given.value}{{}}"
    return None


def printed(source: str, file: str = "") -> list[Printed]:
    """Every `name: value` line the source prints, in source order; a source that does not parse prints none."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[Printed] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            line = _printed_line(node)
            for part in (line or "").split("\n"):
                if match := _LINE.match(part):
                    found.append(Printed(match.group(1), file, node.lineno))
    return sorted(found, key=lambda p: p.line)


def _rank(name: str) -> tuple[int, int]:
    """Held-out scores first, then any name that says its goal; 0 for a name that is no score (num_steps)."""
    words = _words(name)
    return (int(goal_of(name) is not None), int(bool(words) and words[0] in _HELD_OUT))


def best(candidates: list[Printed]) -> Printed | None:
    """The candidate that is the project's score: a held-out loss/accuracy over a training one, the first
    printed on a tie (autoresearch prints val_bpb first in its summary); None when no name is a score."""
    scored = [p for p in candidates if _rank(p.name)[0]]
    return max(scored, key=lambda p: _rank(p.name)) if scored else None  # max keeps the first of equals


def choose(root: Path, files: list[str], name: str | None, goal: Goal | None, default: str) -> Choice:
    """The metric for `arsup init`: the name and goal given, else what `files` print, else `default`.

    A goal not given comes from the name (minimize where the name does not say)."""
    how = "change it with `arsup init --force --metric NAME --goal minimize|maximize` or in arsup.toml's [metric]"
    if name:
        chosen = goal or goal_of(name) or "minimize"
        return Choice(name, chosen, f"metric {name} ({chosen}), as given; {how}")
    candidates = [p for file in files for p in printed(_read(root / file), file)]
    found = best(candidates)
    if found is None:
        where = ", ".join(files) or "the editable files"
        chosen = goal or goal_of(default) or "minimize"
        return Choice(default, chosen, f"found no `name: value` metric line printed in {where}; "
                                       f"metric {default} ({chosen}) written; {how}")
    chosen = goal or goal_of(found.name) or "minimize"
    others = sorted({p.name for p in candidates if p.name != found.name and _rank(p.name)[0]})
    also = f" (it also prints {', '.join(others)})" if others else ""
    return Choice(found.name, chosen, f"metric {found.name} ({chosen}): {found.file} line {found.line} prints "
                                      f"`{found.name}: ...`{also}; {how}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # a listed file not written yet: nothing printed
        return ""
