"""What a coding agent changed in its scratch copy: the files a proposal carries, and what it cannot carry."""

from __future__ import annotations

from pathlib import Path

from arsup.core.agents.scratch import Scratch


def exported(folder: Path) -> None:
    (folder / "train.py").write_text("LR = 1\n")
    (folder / "prepare.py").write_text("DATA = 1\n")
    (folder / "data").mkdir()
    (folder / "data" / "notes.txt").write_text("kept\n")


def test_every_changed_or_added_text_file_is_proposed_whatever_its_path(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path / "work")
    scratch.reset(exported)
    (scratch.folder / "train.py").write_text("LR = 2\n")
    (scratch.folder / "prepare.py").write_text("DATA = 2\n")  # protected: the engine refuses it, by name
    (scratch.folder / "new.py").write_text("X = 1\n")
    (scratch.folder / "__pycache__").mkdir()
    (scratch.folder / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00\xff")  # from running it
    changes = scratch.changes()
    assert changes.files == {"new.py": "X = 1\n", "prepare.py": "DATA = 2\n", "train.py": "LR = 2\n"}
    assert changes.refusal() == ""


def test_what_a_proposal_cannot_carry_is_named(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path / "work")
    scratch.reset(exported)
    (scratch.folder / "data" / "notes.txt").unlink()
    (scratch.folder / "blob.bin").write_bytes(b"\xff\xfe\x00")
    (scratch.folder / "link.py").symlink_to("/etc/passwd")
    changes = scratch.changes()
    assert changes.files == {}
    assert changes.problems == [
        "data/notes.txt was deleted; arsup does not delete files: put it back",
        "blob.bin is not UTF-8 text; only text files can be proposed: remove it",
        "link.py is a symbolic link; only text files can be proposed: remove it",
    ]


def test_a_reset_starts_from_the_export_again(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path / "work")
    scratch.reset(exported)
    (scratch.folder / "stray.py").write_text("left from the last proposal\n")
    scratch.reset(exported)
    assert not (scratch.folder / "stray.py").exists() and scratch.changes().files == {}
