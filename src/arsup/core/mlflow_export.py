"""MLflow export: finished experiments as MLflow runs, for people whose team already reads MLflow.

The journal stays the record; MLflow is a view of it. Each tag is an MLflow
experiment `arsup/<tag>`, each finished experiment one run in it, marked with
its arsup id so that exporting again adds nothing. `arsup export` sends a whole
journal at once; `[export] mlflow = true` sends each experiment as it ends, from
a thread of its own, so a slow or absent tracking server never holds the loop.

MLflow is optional and heavy to import (~0.6 s): it is imported on first use,
never with the core. The default store is SQLite under `.arsup/`: MLflow 3.13+
refuses the old `mlruns` folder store unless `MLFLOW_ALLOW_FILE_STORE` is set.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import queue
import textwrap
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from arsup.core.events import Event, ExperimentFinished, Notice
from arsup.core.experiment import Experiment, Status

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

MISSING = "MLflow is not installed: pip install 'arsup[mlflow]'"
# MLflow's HTTP client retries a dead server for about 4 minutes by default (7 retries, backoff 2,
# 120 s a request); a live export gives up in seconds, and `arsup export` sends what it missed.
FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


class ExportError(Exception):
    """Why an export could not be made, in one line for the person."""


def tracking_uri(root: Path, configured: str = "") -> str:
    """`[export] mlflow_uri`, else the person's own tracking server, else a store in the project's `.arsup/`."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / '.arsup' / 'mlflow.db').resolve()}"


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a local SQLite URI, which needs some care.

    SQLite does not make the file's folder, and MLflow would put the artifacts
    in `./mlruns` of whatever folder arsup runs in: they go next to the file.
    """
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def _ms(seconds: float) -> int | None:
    return int(seconds * 1000) if seconds else None


class MlflowExport:
    """Finished experiments to MLflow runs; safe to repeat, it skips what is there already."""

    def __init__(self, uri: str, metric: str) -> None:
        if importlib.util.find_spec("mlflow") is None:  # said at set-up; the import itself waits for the first export
            raise ExportError(MISSING)
        self.uri = uri
        self.metric = metric
        self._client: MlflowClient | None = None
        self._experiment_ids: dict[str, str] = {}  # tag -> MLflow experiment id

    def export(self, experiments: Iterable[Experiment]) -> int:
        """Export the finished experiments not exported yet; how many were."""
        try:
            return sum(self._export(experiment) for experiment in experiments if experiment.status in Status.FINAL)
        except Exception as exc:  # MLflow's, SQLAlchemy's, HTTP and OS errors alike: one line for the person
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportError(f"MLflow export to {self.uri} failed: {detail}") from exc

    def _connect(self) -> MlflowClient:
        """An explicit client, so the person's own process keeps its global MLflow settings."""
        if self._client is None:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # MLflow 3 phones home unless told not to
            from mlflow.tracking import MlflowClient

            database = _sqlite_file(self.uri)
            if database is not None:
                database.parent.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _experiment_id(self, client: MlflowClient, tag: str) -> str:
        if tag not in self._experiment_ids:
            name = f"arsup/{tag}"
            found = client.get_experiment_by_name(name)
            if found is not None:
                self._experiment_ids[tag] = found.experiment_id
            else:
                database = _sqlite_file(self.uri)
                artifacts = (database.parent / "mlartifacts").as_uri() if database else None
                self._experiment_ids[tag] = client.create_experiment(name, artifact_location=artifacts)
        return self._experiment_ids[tag]

    def _export(self, experiment: Experiment) -> bool:
        """One experiment as one run; False when it is there already.

        The run gets its `arsup.id` last, and is deleted if anything before
        fails, so a half-written run is never taken for an exported one.
        """
        from mlflow.entities import Param

        client = self._connect()
        experiment_id = self._experiment_id(client, experiment.tag)
        if client.search_runs([experiment_id], f"tags.`arsup.id` = '{experiment.id}'", max_results=1):
            return False
        short = textwrap.shorten(experiment.hypothesis, 60, placeholder="...")
        run = client.create_run(
            experiment_id,
            start_time=_ms(experiment.started_at or experiment.proposed_at),  # one that never trained: when proposed
            tags=self._tags(experiment),
            run_name=f"{experiment.id} {short}".rstrip(),
        )
        run_id = run.info.run_id
        try:
            if experiment.diff:
                client.log_text(run_id, experiment.diff, "diff.patch")
            seeds = ",".join(str(r.seed) for r in experiment.runs)
            params = [Param("seeds", seeds), Param("agent", experiment.agent)]
            client.log_batch(run_id, metrics=self._metrics(experiment), params=params)
            status = "FAILED" if experiment.status == Status.CRASH else "FINISHED"
            client.set_terminated(run_id, status, end_time=_ms(experiment.finished_at))
            client.set_tag(run_id, "arsup.id", experiment.id)
        except Exception:
            with contextlib.suppress(Exception):  # the store may be what failed
                client.delete_run(run_id)
            raise
        return True

    def _metrics(self, experiment: Experiment) -> list[Metric]:
        """The decision and its noise, the secondary metrics, and the metric seed by seed (the step is the seed)."""
        from mlflow.entities import Metric

        stamp = _ms(experiment.finished_at) or int(time.time() * 1000)
        decision = {
            self.metric: experiment.metric, "metric_std": experiment.metric_std,
            "gain_sigma": experiment.gain_sigma, "p_value": experiment.p_value, "sigma": experiment.sigma,
        }
        values = {
            **experiment.metrics,
            **{key: value for key, value in decision.items() if value is not None},
            "wall_s": sum(r.wall_s for r in experiment.runs),
        }
        metrics = [Metric(key, float(value), stamp, 0) for key, value in values.items()]
        return metrics + [
            Metric(f"{self.metric}_by_seed", r.metrics[self.metric], stamp, r.seed)
            for r in experiment.runs if self.metric in r.metrics
        ]

    @staticmethod
    def _tags(experiment: Experiment) -> dict[str, str]:
        return {
            "arsup.tag": experiment.tag,
            "arsup.status": experiment.status,
            "arsup.commit": experiment.commit,
            "arsup.parent": experiment.parent,
            "arsup.agent": experiment.agent,
            "arsup.slot": experiment.slot,
            "arsup.baseline": "true" if experiment.is_baseline else "false",
            "arsup.reason": experiment.reason,
            "mlflow.note.content": experiment.hypothesis,  # the run's description in MLflow's UI
        }


class LiveExport:
    """An engine subscriber for `[export] mlflow = true`: each finished experiment, in order, from one worker thread.

    Invariants: the loop never waits for the tracker; a dead one costs
    seconds, not minutes (`FAIL_FAST`, where the person set nothing of
    their own); once the session closes, the first failure ends the
    attempts, and what did not get through is counted for the person to
    send later with `arsup export`."""

    def __init__(self, uri: str, metric: str, warn: Callable[[Notice], None]) -> None:
        self.exporter = MlflowExport(uri, metric)  # a missing MLflow is a config error at start, not at 3 a.m.
        self.warn = warn  # how a failure is said (the engine's emit)
        for name, value in FAIL_FAST.items():
            os.environ.setdefault(name, value)  # MLflow reads them at each request
        self._failed = False
        self._closing = False
        self._gave_up = False  # a failure once the session closed: the rest is not tried
        self._counts = threading.Lock()
        self._pending = 0  # queued or being sent
        self._missed = 0  # failed, or given up on at the close
        self._queue: queue.Queue[Experiment | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="arsup-mlflow", daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        if isinstance(event, ExperimentFinished):
            with self._counts:
                self._pending += 1
            self._queue.put(event.experiment)

    @property
    def pending(self) -> int:
        """Finished experiments not sent yet: queued, or on their way."""
        with self._counts:
            return self._pending

    @property
    def unsent(self) -> int:
        """Finished experiments the tracker does not have from this session: failed, or still pending."""
        with self._counts:
            return self._missed + self._pending

    def close(self, timeout: float | None = None) -> int:
        """Export what is queued, giving up at the first failure, then stop the worker (at the end of a
        session); the experiments that did not get through (`unsent`), those still pending after `timeout` too."""
        self._closing = True
        self._queue.put(None)
        self._thread.join(timeout)
        return self.unsent

    def _work(self) -> None:
        while (experiment := self._queue.get()) is not None:
            sent = False
            if not self._gave_up:
                try:
                    self.exporter.export([experiment])
                    sent = True
                except Exception as exc:  # noqa: BLE001 -- the worker outlives any failure; the next may get through
                    if not self._failed:  # once: an unreachable server would otherwise fill the log
                        self._failed = True
                        logger.warning("[export] mlflow failed: %s", exc)
                        self.warn(Notice(f"[export] {exc}; later failures are not reported", "warning"))
                    self._gave_up = self._closing
            with self._counts:
                self._pending -= 1
                self._missed += not sent
