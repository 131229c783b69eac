"""report.md's words for figures only some nights have: candidates carried onto a newer best (slots)."""

from __future__ import annotations

import re

from arsup.core.experiment import Experiment, Status
from arsup.core.summary import summarize
from arsup.report.markdown import comparison_markdown, night_markdown


def _record(id_: str, status: str, metric: float, hypothesis: str, **agent_data: object) -> Experiment:
    return Experiment(id=id_, tag="t", parent="p", hypothesis=hypothesis, agent="llm", commit=id_ * 7,
                      status=status, metric=metric, agent_data=dict(agent_data), is_baseline=id_ == "0001")


CARRIED_NIGHT = [
    _record("0001", Status.KEEP, 1.0, "baseline"),
    _record("0002", Status.KEEP, 0.9, "deeper"),
    _record("0003", Status.DISCARD, 0.85, "wider"),  # beat 0001 while 0002 was kept
    _record("0004", Status.KEEP, 0.8, "faster"),
    _record("0005", Status.DISCARD, 0.75, "wider (again: it beat 0002 while 0004 was kept)",
            again_of="0003", carried=1, original="wider"),
    _record("0006", Status.KEEP, 0.7, "wider (carried 2 times: it beat 0004 while 0007 was kept)",
            again_of="0005", carried=2, original="wider"),
    _record("0007", Status.KEEP, 0.6, "lower LR (again: it beat 0004 while 0006 was kept)",
            again_of="0004", carried=1, original="lower LR"),
]


def test_the_report_says_how_often_a_candidate_was_carried_per_kept_change_and_in_all() -> None:
    summary = summarize("t", CARRIED_NIGHT, "val_bpb", "minimize")
    assert summary.carried == 3
    assert [(k.id, k.carried) for k in summary.kept_changes] == [
        ("0001", 0), ("0002", 0), ("0004", 0), ("0006", 2), ("0007", 1),
    ]
    report = night_markdown(summary, "progress.png")
    assert ("| **carried onto a newer best** | 3 times, 2 of them kept (slots: a candidate that beat a best "
            "replaced meanwhile ran again on the new one) |") in report
    assert "| id | commit | val_bpb | improvement | sigma | p | seeds | carried | hypothesis |" in report
    assert "| 0006 | 0006000 | 0.700000 | 0.100000 (12.50%) | – | – | 0 | 2 | wider (carried 2 times:" in report
    assert "| 0002 | 0002000 | 0.900000 | 0.100000 (10.00%) | – | – | 0 | 0 | deeper |" in report


def test_a_night_without_slots_has_no_carried_words_and_the_comparison_stays_aligned() -> None:
    carried = summarize("t", CARRIED_NIGHT, "val_bpb", "minimize")
    plain = summarize("u", CARRIED_NIGHT[:2], "val_bpb", "minimize")
    assert plain.carried == 0 and "carried" not in night_markdown(plain, "progress.png")
    compare = comparison_markdown([plain, carried], "compare.png")
    assert "| **carried onto a newer best** | – | 3 times, 2 of them kept" in compare  # under its own night
    assert "| **source** | arsup | arsup |" in compare


def test_a_time_capped_run_is_flagged_and_left_out_of_the_noise_floor() -> None:
    from arsup.core.experiment import RunResult

    baseline = _record("0001", Status.KEEP, 3.49, "baseline")
    baseline.runs = [RunResult(seed=i, log_path="", metrics={"val_bpb": v}, steps=341)
                     for i, v in enumerate([3.3374, 3.3401, 3.9120])]
    baseline.runs[2].steps, baseline.runs[2].capped = 181, 181 / 341
    report = night_markdown(summarize("t", [baseline], "val_bpb", "minimize"), "progress.png")
    assert "| **noise floor** | sigma 0.00190919 from 2 runs |" in report
    assert ("| **time-capped** | 0001: time-capped at 53% of the steps (1 of 3 runs): compare with care "
            "(1 left out of the noise floor) |") in report


def test_a_gain_reads_as_an_improvement_or_as_worse_never_as_a_raw_signed_difference() -> None:
    import dataclasses

    from arsup.report.markdown import headline

    better = summarize("t", CARRIED_NIGHT, "val_bpb", "minimize")  # lower is better: 1.0 down to 0.6
    assert "; improvement 0.400000 (40.00%) over the baseline 1.000000;" in headline(better)
    assert "| **improvement** | 0.400000 (40.00%) over the baseline |" in night_markdown(better, "p.png")
    worse = dataclasses.replace(better, gain=-0.012345, gain_pct=-1.2345)
    assert "; worse by 0.012345 (1.23%) than the baseline 1.000000;" in headline(worse)
    report = night_markdown(worse, "p.png")
    assert "| **improvement** | worse by 0.012345 (1.23%) than the baseline |" in report
    assert "+0." not in report and "-0.0" not in report and not re.search(r"\bgain\b", report)
    assert "| **improvement** |" in comparison_markdown([better, worse], "c.png")
