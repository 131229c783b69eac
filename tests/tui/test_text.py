"""Untrusted text shown as a terminal would show it, never as markup; fields packed between, not inside."""

from __future__ import annotations

from rich.text import Text

from arsup.tui import text


def test_markup_is_never_interpreted() -> None:
    line = text.log_line("[/usr/bin] [bold]x [link=http://x]y[/link]")
    assert line.plain == "[/usr/bin] [bold]x [link=http://x]y[/link]" and not line.spans


def test_ansi_colours_kept_other_escapes_dropped() -> None:
    line = text.log_line("\x1b[1;31mred\x1b[0m \x1b[2Kcleared \x1b]0;window title\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\")
    assert line.plain == "red cleared link"
    assert line.spans and line.spans[0].end == 3


def test_progress_collapses_and_control_characters_show() -> None:
    assert text.log_line("epoch 1\repoch 2\repoch 3").plain == "epoch 3"
    assert text.log_line("done\r").plain == "done"
    assert text.log_line("a\x01b\tc\x07").plain == "a\ufffdb c"  # tab to the next stop of 4; bell dropped


def test_numbers() -> None:
    assert (text.metric(None), text.metric(2.5)) == ("-", "2.500000")
    assert (text.delta(None), text.delta(-0.25)) == ("", "-0.250000")
    assert text.improves(-0.1, "minimize") and text.improves(0.1, "maximize") and not text.improves(0.1, "minimize")
    assert text.duration(3 * 3600 + 61) == "3:01:01" and text.duration(-5) == "0:00:00"


def test_pack_wraps_between_fields_only() -> None:
    fields = [Text("tinylm"), Text("best 2.02 (-0.61)"), Text("exp 4 kept")]
    assert text.pack(fields, 80).plain == "tinylm  best 2.02 (-0.61)  exp 4 kept"
    assert text.pack(fields, 20).plain.split("\n") == ["tinylm", "best 2.02 (-0.61)", "exp 4 kept"]
