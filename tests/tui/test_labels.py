from __future__ import annotations

from arsup.core.experiment import Experiment, Status
from arsup.tui.labels import outcome, tree_label
from arsup.tui.palette import Palette

PALETTE = Palette.from_variables({})


def test_a_confirmed_keep_shows_its_gain_in_sigmas_and_its_p_value() -> None:
    kept = Experiment("0004", "t", "c", "[bold]LR up", "llm", status=Status.KEEP, metric=0.95, p_value=0.0123, gain_sigma=4.2)
    label = tree_label(kept, 1.0, "minimize", PALETTE)
    assert label.plain == "0004 keep     0.950000 -0.050000 +4.2σ p=0.012  [bold]LR up"


def test_a_discard_shows_no_evidence() -> None:
    dropped = Experiment("0005", "t", "c", "h", "llm", status=Status.DISCARD, metric=1.1, p_value=0.4, gain_sigma=-1.0)
    assert "p=" not in outcome(dropped, 1.0, "minimize", PALETTE).plain


def test_a_time_capped_run_is_flagged_after_the_hypothesis() -> None:
    from arsup.core.experiment import RunResult

    runs = [RunResult(seed=0, log_path="", steps=181, capped=181 / 341)]
    capped = Experiment("0001", "t", "c", "baseline", "arsup", status=Status.KEEP, metric=3.9, runs=runs)
    assert tree_label(capped, None, "minimize", PALETTE).plain.endswith("  baseline  ⚠ time-capped 53%")
