from arsup.core.terminal import collapse_progress


def test_progress_line_shows_its_last_state() -> None:
    assert collapse_progress("step 1\rstep 2\rstep 3") == "step 3"


def test_crlf_line_end_is_not_a_rewrite() -> None:
    assert collapse_progress("done\r") == "done"
    assert collapse_progress("a\rb\r") == "b"


def test_plain_line_is_unchanged() -> None:
    assert collapse_progress("[/usr/bin] x") == "[/usr/bin] x"
