"""`arsup import` of a big results.tsv: rows per second and peak memory, the streaming import against the old one.

The old importing.py is taken from git (the commit before the import was made
streaming) into a module of its own, so both run in one session against the
same journal code. Each import runs in a fresh process, in a folder that is no
git repo (the pure cost of reading and recording) and in a git repo that lacks
the log's commits (a log from another clone, as the slow case was found: a
`git rev-parse` per row). Figures: rows per second, new / old, and the peak
resident memory the import added to its process. An import that passes
`--limit` seconds is stopped and reported as a bound.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, git, parser

OLD_COMMIT = "cdd2fd3"  # the last commit whose importing.py held every row in lists and ran git once per row
HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"


def write_log(path: Path, rows: int) -> Path:
    """A results.tsv of `rows` experiments whose commits no repo here has, a keep in three."""
    statuses = ["keep", "discard", "crash"]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(HEADER)
        for n in range(rows):
            handle.write(f"{n * 7919 % 16**7:07x}\t{1 - n / rows / 2:.6f}\t44.2\t{statuses[n % 3]}\t"
                         f"try change number {n} of the night\n")
    return path


def importer(code: str):  # noqa: ANN201 -- a module, new or old
    """The import module of `code`: "new" (the working tree's) or "old" (OLD_COMMIT's, from git)."""
    if code == "new":
        from arsup.core import importing

        return importing
    source = subprocess.run(["git", "show", f"{OLD_COMMIT}:src/arsup/core/importing.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="arsup-old-import-")) / "importing_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("importing_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def one(code: str, log: Path, where: Path) -> None:
    """In this process: one import, then its seconds and the peak memory it added, as JSON."""
    module = importer(code)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    module.import_results(where, log)
    seconds = time.perf_counter() - started
    added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"seconds": seconds, "added_mb": added / 1024}))


def measure(code: str, rows: int, repo: bool, logs: Path, limit: float) -> dict[str, float] | None:
    """One import in a fresh process; None when it passed `limit` seconds."""
    where = Path(tempfile.mkdtemp(prefix="arsup-import-"))
    if repo:
        (where / "train.py").write_text("LR = 0.001\n")
        git(where, "init", "-q", "-b", "main")
        git(where, "add", "-A")
        git(where, "commit", "-qm", "bench")
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--one", code, str(logs / f"{rows}.tsv"), str(where)],
            capture_output=True, text=True, timeout=limit,
        )
    except subprocess.TimeoutExpired:
        return None
    finally:
        shutil.rmtree(where, ignore_errors=True)
    if done.returncode:
        raise SystemExit(f"the {code} import of {rows} rows failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("--limit", type=float, default=120.0, help="seconds an import may take before it is stopped")
    arguments.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000], help="--smoke: 200 and 2,000")
    arguments.add_argument("--one", nargs=3, metavar=("CODE", "LOG", "WHERE"), help=argparse.SUPPRESS)
    args = arguments.parse_args()
    if args.one:
        code, log, where = args.one
        one(code, Path(log), Path(where))
        return
    sizes = [200, 2_000] if args.smoke else args.rows
    logs = Path(tempfile.mkdtemp(prefix="arsup-import-logs-"))
    for rows in sizes:
        write_log(logs / f"{rows}.tsv", rows)
    print(f"{'folder':<10} {'rows':>8} {'old rows/s':>11} {'new rows/s':>11} {'new/old':>8} "
          f"{'old peak MB':>12} {'new peak MB':>12}")
    for repo in (False, True):
        for rows in sizes:
            old, new = (measure(code, rows, repo, logs, args.limit) for code in ("old", "new"))
            if new is None:
                raise SystemExit(f"the new import of {rows} rows took more than {args.limit:.0f} s")
            new_rate = rows / new["seconds"]
            old_rate = f"{rows / old['seconds']:11.0f}" if old else f"<{rows / args.limit:10.0f}"
            ratio = f"{new_rate * old['seconds'] / rows:8.1f}" if old else f">{new_rate * args.limit / rows:7.1f}"
            old_mb = f"{old['added_mb']:12.1f}" if old else f"{'(stopped)':>12}"
            print(f"{'git repo' if repo else 'no repo':<10} {rows:>8} {old_rate} {new_rate:11.0f} {ratio} "
                  f"{old_mb} {new['added_mb']:12.1f}", flush=True)
    shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
