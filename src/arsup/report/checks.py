"""Plain-text lines of the morning-after checks (`arsup verify`, `arsup ablate`)."""

from __future__ import annotations

from arsup.core.checks import Ablation, Comparison, Measured, VerifyReport


def _stats(measured: Measured | None) -> str:
    if measured is None or measured.mean is None:
        return "no successful run"
    spread = f" ± {measured.std:.6f}" if measured.std is not None else ""
    crashed = f", {len(measured.crashes)} crashed" if measured.crashes else ""
    return f"mean {measured.mean:.6f}{spread} over {len(measured.values)} seeds{crashed}"


def _comparison(comparison: Comparison | None) -> str:
    if comparison is None or comparison.gain is None:
        return "no seeds in common to pair"
    sigma = f" ({comparison.gain_sigma:.1f} sigma)" if comparison.gain_sigma is not None else ""
    p = f", p = {comparison.p_value:.3g}" if comparison.p_value is not None else ", one seed: no test"
    return f"{comparison.gain:+.6f}{sigma} over {len(comparison.seeds)} paired seeds{p}"


def verify_lines(report: VerifyReport, metric: str) -> list[str]:
    name = f" ({report.experiment.id}: {report.experiment.hypothesis})" if report.experiment else ""
    baseline = Measured({run.seed: run.metrics[metric] for run in report.baseline.runs if metric in run.metrics})
    lines = [
        f"commit {report.commit[:7]}{name}",
        f"  {metric}: {_stats(report.measured)}",
        f"baseline {report.baseline.commit[:7]} ({report.baseline.id}, from the journal)",
        f"  {metric}: {_stats(baseline)}",
        f"gain over the baseline: {_comparison(report.versus_baseline)}",
    ]
    if report.noise is not None:
        lines.append(f"noise floor: {report.noise.describe()}")
    lines.extend(f"crashed: {crash}" for crash in report.measured.crashes)
    return lines


def ablation_lines(rows: list[Ablation], metric: str) -> list[str]:
    lines = [f"what each kept change is worth in the final best ({metric}; positive = it helps):"]
    for row in rows:
        head = f"  {row.experiment.id}  {' '.join(row.experiment.hypothesis.split())[:60]:<60}"
        if row.note:
            lines.append(f"{head}  {row.note}")
        else:
            lines.append(f"{head}  {_comparison(row.contribution)}; without it: {_stats(row.measured)}")
    return lines
