"""The sandbox's cost per run: the same runs with `[sandbox] kind = "bwrap"` and `"none"`, side by side.

Each run goes the loop's own way (measure.run_spec, then runner.run: the
reaper, bubblewrap under it, the shell, the log, the metric read back) in a
real project repo, timed from the start to the moment nothing of it is left.
Two workloads: `true` (nothing but the start and the end) and the toy
training of tests/conftest.TOY_TRAIN (a Python start, as every real run has).
The modes alternate run by run, so a busy machine costs both alike.
"""

from __future__ import annotations

import statistics
import sys
import time

from common import ROOT, make_repo, median, parser, require

sys.path.insert(0, str(ROOT))
from arsup import config  # noqa: E402
from arsup.core import measure, runner, sandbox  # noqa: E402
from tests.conftest import TOY_TRAIN  # noqa: E402

MODES = ("none", "bwrap")
WORKLOADS = {"true": "true", "toy training": "{python} train.py"}


def timed_runs(command: str, runs: int) -> dict[str, list[float]]:
    """Milliseconds per run for each mode, alternated; every run must print the metric (but `true`)."""
    root = make_repo(TOY_TRAIN, command)
    configs = {mode: config.load(root, {"sandbox": {"kind": mode}}) for mode in MODES}
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for index in range(runs):
        for mode in MODES if index % 2 == 0 else reversed(MODES):
            log = root / ".arsup" / "bench" / f"{mode}-{index}.log"
            started = time.perf_counter()
            spec = measure.run_spec(configs[mode], root, sys.executable, log, 0, {})  # the sandbox's binds: its cost too
            outcome = runner.run(spec)
            times[mode].append((time.perf_counter() - started) * 1000)
            assert bool(spec.sandbox) == (mode == "bwrap") and outcome.exit_code == 0, log.read_text()
            assert command == "true" or "val_bpb:" in log.read_text()
    return times


def _quartiles(values: list[float]) -> str:
    """The middle half of the runs (the whole range below 4 runs)."""
    low, *_, high = statistics.quantiles(values, n=4) if len(values) >= 4 else sorted(values)
    return f"{low:.1f}-{high:.1f}"


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("--runs", type=int, default=20, help="runs per mode and workload (default 20; --smoke: 3)")
    args = arguments.parse_args()
    runs = 3 if args.smoke else args.runs
    problem = sandbox.problem_with()
    require(not problem, f"{problem}; nothing to compare (bubblewrap is no optional part: CI installs it)")
    started = time.perf_counter()
    print(f"{runs} runs per mode and workload, alternated; milliseconds from the start to nothing left")
    for name, command in WORKLOADS.items():
        times = timed_runs(command, runs)
        bare, boxed = median(times["none"]), median(times["bwrap"])
        spread = {mode: _quartiles(times[mode]) for mode in MODES}
        print(
            f"{name:>13}: none {bare:6.1f} ms, bwrap {boxed:6.1f} ms (medians; quartiles none {spread['none']}, "
            f"bwrap {spread['bwrap']}): +{boxed - bare:.1f} ms per run, ratio {boxed / bare:.2f}"
        )
    print(f"whole benchmark: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
