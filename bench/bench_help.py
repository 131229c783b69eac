"""`arsup --help` start-up time, beside bare Python start-up measured in the same run."""

from __future__ import annotations

import subprocess
import sys
import time

from common import median, smoke

N = 15  # each; --smoke: 3


def timed(cmd: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    help_s, bare_s = [], []
    for _ in range(3 if smoke(__doc__) else N):
        help_s.append(timed([sys.executable, "-m", "arsup", "--help"]))
        bare_s.append(timed([sys.executable, "-c", "pass"]))
    print(f"arsup --help: median {median(help_s) * 1000:.0f} ms (goal: < 300 ms)")
    print(f"python -c pass: median {median(bare_s) * 1000:.0f} ms; ratio {median(help_s) / median(bare_s):.2f}")


if __name__ == "__main__":
    main()
