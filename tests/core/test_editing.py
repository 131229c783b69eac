"""Planning and writing SEARCH/REPLACE edits, on real files in a temporary repo."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from arsup.core.agents.base import Proposal
from arsup.core.agents.edits import EditError
from arsup.core.editing import carry_over, plan_changes, write_changes
from tests.core.agents.test_edits import block

TRAIN = """\
import math

LR = 0.0005
BATCH = 32


class Model:
    def __init__(self):
        self.width = 64
        self.depth = 4

    def forward(self, x):
        return x * self.width
"""

EDITABLE = ["train.py", "model.py", "sub/*.py"]
PROTECTED = ["prepare.py"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "model.py").write_text("HIDDEN = 128\n")
    (root / "prepare.py").write_text("DATA = 'x'\n")
    (root / "program.md").write_text("# program\n")
    return root


def plan(root: Path, edits: str = "", files: dict[str, str] | None = None, **kw) -> dict[str, str]:
    proposal = Proposal(hypothesis="h", edits=edits, files=files or {})
    return plan_changes(root, proposal, kw.get("editable", EDITABLE), kw.get("protected", PROTECTED))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under a directory, bytes included, to prove nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- plan_changes / write_changes: the happy paths -------------------------


def test_single_edit_plans_then_writes(repo: Path) -> None:
    before = snapshot(repo)
    changes = plan(repo, block("train.py", "LR = 0.0005\n", "LR = 0.003\n"))
    assert changes == {"train.py": TRAIN.replace("LR = 0.0005", "LR = 0.003")}
    assert snapshot(repo) == before  # planning writes nothing
    write_changes(repo, changes)
    assert (repo / "train.py").read_text() == TRAIN.replace("LR = 0.0005", "LR = 0.003")
    assert (repo / "model.py").read_text() == "HIDDEN = 128\n"


def test_blocks_on_one_file_apply_in_order(repo: Path) -> None:
    reply = block("train.py", "LR = 0.0005\n", "LR = 0.001\n") + block(
        "train.py", "LR = 0.001\nBATCH = 32\n", "LR = 0.002\nBATCH = 64\n"
    )
    changes = plan(repo, reply)
    assert changes == {"train.py": TRAIN.replace("LR = 0.0005\nBATCH = 32", "LR = 0.002\nBATCH = 64")}


def test_blocks_across_two_files(repo: Path) -> None:
    reply = block("train.py", "BATCH = 32\n", "BATCH = 16\n") + block("model.py", "HIDDEN = 128\n", "HIDDEN = 256\n")
    changes = plan(repo, reply)
    assert changes == {"train.py": TRAIN.replace("BATCH = 32", "BATCH = 16"), "model.py": "HIDDEN = 256\n"}
    write_changes(repo, changes)
    assert (repo / "model.py").read_text() == "HIDDEN = 256\n"
    assert "BATCH = 16\n" in (repo / "train.py").read_text()


def test_whitespace_tolerant_match_reindents_replacement(repo: Path) -> None:
    # The model dropped the class indentation and left trailing spaces.
    search = "def __init__(self):  \n    self.width = 64\n"
    replace = "def __init__(self):\n    self.width = 128\n    if self.width > 64:\n        self.depth = 2\n"
    changes = plan(repo, block("train.py", search, replace))
    expected = TRAIN.replace(
        "    def __init__(self):\n        self.width = 64\n",
        "    def __init__(self):\n        self.width = 128\n        if self.width > 64:\n            self.depth = 2\n",
    )
    assert changes == {"train.py": expected}


def test_whitespace_tolerant_match_dedents_when_search_is_over_indented(repo: Path) -> None:
    search = "        LR = 0.0005\n        BATCH = 32\n"
    replace = "        LR = 0.001\n\n        BATCH = 8\n"
    changes = plan(repo, block("train.py", search, replace))
    assert changes == {"train.py": TRAIN.replace("LR = 0.0005\nBATCH = 32", "LR = 0.001\n\nBATCH = 8")}


def test_exact_match_wins_over_a_whitespace_tolerant_one(repo: Path) -> None:
    (repo / "model.py").write_text("x = 1\nif True:\n    x = 1\n")
    changes = plan(repo, block("model.py", "    x = 1\n", "    x = 2\n"))
    assert changes == {"model.py": "x = 1\nif True:\n    x = 2\n"}


def test_whole_file_replacement(repo: Path) -> None:
    changes = plan(repo, files={"train.py": "LR = 1\r\n", "model.py": "HIDDEN = 128\n"})
    assert changes == {"train.py": "LR = 1\n"}  # model.py unchanged, so left out
    write_changes(repo, changes)
    assert (repo / "train.py").read_bytes() == b"LR = 1\n"


def test_crlf_file_keeps_crlf_and_mode(repo: Path) -> None:
    path = repo / "train.py"
    path.write_bytes(TRAIN.replace("\n", "\r\n").encode())
    path.chmod(0o754)
    changes = plan(repo, block("train.py", "LR = 0.0005\n", "LR = 0.003\n"))
    write_changes(repo, changes)
    assert path.read_bytes() == TRAIN.replace("LR = 0.0005", "LR = 0.003").replace("\n", "\r\n").encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o754


def test_empty_search_creates_a_new_editable_file(repo: Path) -> None:
    changes = plan(repo, block("sub/layers.py", "", "def act(x):\n    return x\n"))
    assert changes == {"sub/layers.py": "def act(x):\n    return x\n"}
    assert not (repo / "sub").exists()
    write_changes(repo, changes)
    assert (repo / "sub" / "layers.py").read_text() == "def act(x):\n    return x\n"


def test_empty_search_fills_an_empty_file(repo: Path) -> None:
    (repo / "model.py").write_text("")
    assert plan(repo, block("model.py", "", "X = 1\n")) == {"model.py": "X = 1\n"}


def test_edit_that_changes_nothing_is_left_out(repo: Path) -> None:
    assert plan(repo, block("train.py", "LR = 0.0005\n", "LR = 0.0005\n")) == {}


def test_file_without_final_newline(repo: Path) -> None:
    (repo / "model.py").write_text("A = 1\nB = 2")
    assert plan(repo, block("model.py", "B = 2\n", "B = 3\nC = 4\n")) == {"model.py": "A = 1\nB = 3\nC = 4"}


# --- plan_changes: refusals -------------------------------------------------


@pytest.mark.parametrize("edits", ["", "HYPOTHESIS: lower LR\nI would lower the learning rate.\n"])
def test_no_blocks(repo: Path, edits: str) -> None:
    with pytest.raises(EditError) as err:
        plan(repo, edits)
    assert str(err.value).startswith("no edit blocks found")
    assert ">>>>>>> REPLACE" in str(err.value)


def test_both_edits_and_files_is_refused(repo: Path) -> None:
    with pytest.raises(EditError, match="both"):
        plan(repo, block("train.py", "LR = 0.0005\n", "LR = 1\n"), files={"train.py": "LR = 1\n"})


def test_search_matching_nothing_names_the_closest_line(repo: Path) -> None:
    with pytest.raises(EditError) as err:
        plan(repo, block("train.py", "LR = 0.005\n", "LR = 0.003\n"))
    reason = str(err.value)
    assert reason.startswith("train.py, block 1 of 1: the SEARCH text matches nothing")
    assert "closest lines of the file are line 3:\n3| LR = 0.0005" in reason


def test_search_matching_nothing_after_an_earlier_block_says_so(repo: Path) -> None:
    reply = block("train.py", "import math\n\n", "") + block("train.py", "BATCH = 33\n", "BATCH = 1\n")
    with pytest.raises(EditError) as err:
        plan(repo, reply)
    reason = str(err.value)
    assert "train.py, block 2 of 2" in reason
    assert "line 2 (line numbers count in the file as already changed by the earlier blocks)" in reason
    assert "2| BATCH = 32" in reason


def test_search_matching_twice(repo: Path) -> None:
    (repo / "model.py").write_text("a = 1\nx = 0\nb = 2\nc = 3\nx = 0\n")
    with pytest.raises(EditError) as err:
        plan(repo, block("model.py", "x = 0\n", "x = 1\n"))
    assert "model.py, block 1 of 1: the SEARCH text matches 2 places, starting at lines 2, 5" in str(err.value)


def test_whitespace_tolerant_match_must_also_be_unique(repo: Path) -> None:
    (repo / "model.py").write_text("if a:\n    x = 0\nif b:\n        x = 0\n")
    with pytest.raises(EditError, match="matches 2 places, starting at lines 2, 4"):
        plan(repo, block("model.py", "x = 0\n", "x = 1\n"))


def test_empty_search_on_existing_file_is_refused(repo: Path) -> None:
    with pytest.raises(EditError, match="model.py, block 1 of 1: the SEARCH is empty, but model.py already exists"):
        plan(repo, block("model.py", "", "X = 1\n"))


def test_search_on_missing_file_is_refused(repo: Path) -> None:
    with pytest.raises(EditError, match="sub/new.py does not exist; to create it, leave the SEARCH"):
        plan(repo, block("sub/new.py", "X = 1\n", "X = 2\n"))


@pytest.mark.parametrize(
    ("path", "editable", "reason"),
    [
        ("prepare.py", ["*.py"], "prepare.py: the file is protected"),
        ("program.md", EDITABLE, "program.md: the file is not editable; editable files: train.py, model.py, sub/*.py"),
        (".git/config", ["*"], ".git/config: files under .git may not be edited"),
        ("sub", ["*"], "sub: is a directory"),
    ],
)
def test_refused_paths(repo: Path, path: str, editable: list[str], reason: str) -> None:
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("[core]\n")
    (repo / "sub").mkdir()
    before = snapshot(repo)
    with pytest.raises(EditError) as err:
        plan(repo, files={path: "x = 1\n"}, editable=editable)
    assert str(err.value).startswith(reason)
    assert snapshot(repo) == before


def test_protected_wins_over_editable_for_whole_files(repo: Path) -> None:
    with pytest.raises(EditError, match="prepare.py: the file is protected"):
        plan(repo, files={"prepare.py": "DATA = 'y'\n"}, editable=["*.py"])
    assert (repo / "prepare.py").read_text() == "DATA = 'x'\n"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink-file", "symlink-dir"])
@pytest.mark.parametrize("mode", ["edits", "files"])
def test_paths_escaping_root_are_refused(repo: Path, tmp_path: Path, kind: str, mode: str) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("SECRET = 1\n")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "outside.py").write_text("SECRET = 1\n")
    os.symlink(outside, repo / "link.py")
    os.symlink(tmp_path / "outdir", repo / "sub")
    path = {
        "dotdot": "../outside.py",
        "absolute": str(outside),
        "symlink-file": "link.py",
        "symlink-dir": "sub/outside.py",
    }[kind]
    before = snapshot(tmp_path)
    proposal_edits = block(path, "SECRET = 1\n", "SECRET = 2\n") if mode == "edits" else ""
    proposal_files = {path: "SECRET = 2\n"} if mode == "files" else None
    with pytest.raises(EditError, match="outside the repository|absolute paths are refused"):
        plan(repo, proposal_edits, proposal_files, editable=["*.py", "*"])
    assert snapshot(tmp_path) == before
    assert outside.read_bytes() == b"SECRET = 1\n"


def test_symlink_inside_root_cannot_reach_a_protected_file(repo: Path) -> None:
    os.symlink(repo / "prepare.py", repo / "alias.py")
    with pytest.raises(EditError, match="alias.py: the file is protected"):
        plan(repo, block("alias.py", "DATA = 'x'\n", "DATA = 'y'\n"), editable=["*.py"])


def test_write_changes_refuses_to_follow_a_symlink_out(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("SECRET = 1\n")
    os.symlink(outside, repo / "late.py")
    with pytest.raises(EditError, match="outside the repository"):
        write_changes(repo, {"late.py": "SECRET = 2\n"})
    assert outside.read_text() == "SECRET = 1\n"


def test_syntax_error_names_file_block_and_shows_the_edited_line(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)  # where Python itself would read the file's old line 4 from disk
    reply = block("model.py", "HIDDEN = 128\n", "HIDDEN = 256\n") + block("train.py", "BATCH = 32\n", "BATCH = (32\n")
    with pytest.raises(EditError) as err:
        plan(repo, reply)
    reason = str(err.value)
    assert reason.startswith("train.py, block 2 of 2: after the edits the file does not compile: line 4:")
    assert "never closed" in reason
    assert ">    4| BATCH = (32" in reason and "BATCH = 32\n" not in reason  # the broken line, not the old one
    assert "     3| " in reason and "     5| " in reason  # with its neighbours


def test_a_compiler_error_shows_the_edited_line_too(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    with pytest.raises(EditError) as err:
        plan(repo, block("train.py", "BATCH = 32\n", "return 32\n"))
    assert "'return' outside function" in str(err.value) and ">    4| return 32" in str(err.value)


def test_a_whole_file_that_does_not_compile_says_so(repo: Path) -> None:
    with pytest.raises(EditError, match=r"train.py \(whole file\): after the edits the file does not compile: line 2"):
        plan(repo, files={"train.py": "A = 1\nB = (\n"})


def test_a_refused_path_names_its_block(repo: Path) -> None:
    reply = block("model.py", "HIDDEN = 128\n", "HIDDEN = 256\n") + block("prepare.py", "DATA = 'x'\n", "DATA = 1\n")
    with pytest.raises(EditError, match="block 2 of 2: prepare.py: the file is protected"):
        plan(repo, reply)


def test_all_or_none_when_a_later_block_fails(repo: Path) -> None:
    before = snapshot(repo)
    reply = block("model.py", "HIDDEN = 128\n", "HIDDEN = 256\n") + block("train.py", "NOPE = 1\n", "NOPE = 2\n")
    with pytest.raises(EditError, match="train.py, block 2 of 2: the SEARCH text matches nothing"):
        write_changes(repo, plan(repo, reply))
    assert snapshot(repo) == before
    assert (repo / "model.py").read_text() == "HIDDEN = 128\n"


def test_all_or_none_when_a_later_path_is_refused(repo: Path) -> None:
    before = snapshot(repo)
    reply = block("model.py", "HIDDEN = 128\n", "HIDDEN = 256\n") + block("prepare.py", "DATA = 'x'\n", "DATA = 1\n")
    with pytest.raises(EditError, match="prepare.py: the file is protected"):
        write_changes(repo, plan(repo, reply))
    assert snapshot(repo) == before


def test_a_change_is_carried_onto_a_file_changed_beside_it() -> None:
    before = "A = 0\nB = 0\nC = 0\n"
    kept = "A = 1\nB = 0\nC = 0\n"  # the line above changed since: a three-way merge calls that a conflict
    assert carry_over("t.py", before, "A = 0\nB = 2\nC = 0\n", kept) == "A = 1\nB = 2\nC = 0\n"
    assert carry_over("t.py", before, "A = 0\nB = 0\nC = 0\nD = 3\n", kept) == "A = 1\nB = 0\nC = 0\nD = 3\n"
    with pytest.raises(EditError, match="t.py"):  # the same line changed since
        carry_over("t.py", before, "A = 5\nB = 0\nC = 0\n", kept)
    assert carry_over("new.py", None, "X = 1\n", None) == "X = 1\n"
    with pytest.raises(EditError, match="exists now"):
        carry_over("new.py", None, "X = 1\n", "X = 2\n")
