"""MLflow export: experiments read back from a real local MLflow store, once each, never holding the loop."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arsup.core.events import ExperimentFinished, Notice
from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.mlflow_export import FAIL_FAST, ExportError, LiveExport, MlflowExport, tracking_uri

MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

# slow: a real MLflow store and live exports to real servers: 1 s to import MLflow, seconds a test
# SQLAlchemy 2.1 deprecates a loader option MLflow's SQL store still configures; not ours to fix.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")]

DIFF = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-LR = 0.0001\n+LR = 0.003\n"
LONG = "raise the learning rate thirtyfold because the loss curve is still falling steeply at the end of the budget"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with MLflow's tables made once: making them runs its migrations, a second or more each time."""
    database = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{database}")
    return database


def store(empty_store: Path, folder: Path) -> str:
    """A fresh store of the tests' own (a copy of the empty one), as its URI."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_store, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def experiments() -> list[Experiment]:
    def run(seed: int, **metrics: float) -> RunResult:
        return RunResult(seed=seed, log_path=f"runs/{seed}.log", exit_code=0, wall_s=10.0, metrics=metrics)

    common = {
        "tag": "t", "parent": "p" * 40, "agent": "script", "slot": "main", "started_at": 1000.0, "finished_at": 1030.0,
    }
    baseline = Experiment(
        id="0001", hypothesis="baseline", status=Status.KEEP, commit="p" * 40, is_baseline=True, reason="baseline",
        runs=[run(1, val_bpb=1.5, peak_vram_mb=2048.0)], metric=1.5, sigma=0.01,
        metrics={"val_bpb": 1.5, "peak_vram_mb": 2048.0, "training_seconds": 9.5}, **common,
    )
    discard = Experiment(
        id="0002", hypothesis=LONG, status=Status.DISCARD, commit="c" * 40, diff=DIFF, reason="worse than 0001",
        runs=[run(1, val_bpb=1.6), run(2, val_bpb=1.62)], metric=1.61, metric_std=0.014, gain_sigma=-11.0,
        p_value=0.02, sigma=0.01, metrics={"val_bpb": 1.61}, **common,
    )
    crash = Experiment(
        id="0003", hypothesis="no warmup", status=Status.CRASH, commit="d" * 40, reason="crash: NaN loss",
        runs=[RunResult(seed=1, log_path="runs/3.log", exit_code=1, wall_s=2.0, crash_reason="NaN loss")], **common,
    )
    invalid = Experiment(
        id="0004", hypothesis="bad edit", status=Status.INVALID, reason="SEARCH matched nothing", **common,
    )
    running = Experiment(id="0005", hypothesis="not done", status=Status.RUNNING, **common)
    return [baseline, discard, crash, invalid, running]


def runs_by_id(uri: str, tag: str = "t") -> dict[str, object]:
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(f"arsup/{tag}")
    return {run.data.tags["arsup.id"]: run for run in client.search_runs([found.experiment_id])}


def test_each_finished_experiment_becomes_one_run_that_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = tracking_uri(tmp_path / "repo")
    assert uri == store(empty_store, tmp_path / "repo" / ".arsup")

    assert MlflowExport(uri, "val_bpb").export(experiments()) == 4
    runs = runs_by_id(uri)
    assert sorted(runs) == ["0001", "0002", "0003", "0004"]  # the running one waits for its end
    assert {i: r.info.status for i, r in runs.items()} == {
        "0001": "FINISHED", "0002": "FINISHED", "0003": "FAILED", "0004": "FINISHED",
    }

    discard = runs["0002"]
    assert discard.info.run_name.startswith("0002 raise the learning rate") and len(discard.info.run_name) <= 65
    assert (discard.info.start_time, discard.info.end_time) == (1_000_000, 1_030_000)
    tags = {k: v for k, v in discard.data.tags.items() if k.startswith("arsup.") or k == "mlflow.note.content"}
    assert tags == {
        "arsup.id": "0002", "arsup.tag": "t", "arsup.status": "discard", "arsup.commit": "c" * 40,
        "arsup.parent": "p" * 40, "arsup.agent": "script", "arsup.slot": "main", "arsup.baseline": "false",
        "arsup.reason": "worse than 0001", "mlflow.note.content": LONG,
    }
    assert discard.data.params == {"seeds": "1,2", "agent": "script"}
    assert discard.data.metrics == {
        "val_bpb": 1.61, "metric_std": 0.014, "gain_sigma": -11.0, "p_value": 0.02, "sigma": 0.01,
        "wall_s": 20.0, "val_bpb_by_seed": 1.62,
    }
    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(discard.info.run_id, "val_bpb_by_seed")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.6), (2, 1.62)]
    patch = client.download_artifacts(discard.info.run_id, "diff.patch", str(tmp_path))
    assert Path(patch).read_text() == DIFF

    baseline = runs["0001"]
    assert baseline.data.tags["arsup.baseline"] == "true"
    assert baseline.data.metrics == {
        "val_bpb": 1.5, "sigma": 0.01, "peak_vram_mb": 2048.0, "training_seconds": 9.5, "wall_s": 10.0,
        "val_bpb_by_seed": 1.5,
    }
    assert client.list_artifacts(baseline.info.run_id) == []  # no diff, no artifact
    assert runs["0003"].data.metrics == {"wall_s": 2.0} and runs["0003"].data.tags["arsup.reason"] == "crash: NaN loss"
    assert runs["0004"].data.params == {"seeds": "", "agent": "script"}

    # Everything stayed in the project's .arsup/, nothing in the folder arsup ran in.
    assert (tmp_path / "repo" / ".arsup" / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()


def test_exporting_again_adds_nothing(tmp_path: Path, empty_store: Path) -> None:
    uri = store(empty_store, tmp_path)
    exporter = MlflowExport(uri, "val_bpb")
    assert exporter.export(experiments()[:2]) == 2
    assert exporter.export(experiments()) == 2  # only the two new ones
    assert MlflowExport(uri, "val_bpb").export(experiments()) == 0  # a fresh exporter reads what is there
    assert sorted(runs_by_id(uri)) == ["0001", "0002", "0003", "0004"]


def test_the_config_then_the_environment_then_the_project_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/.arsup/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri(tmp_path) == "http://mlflow.internal:5000"
    assert tracking_uri(tmp_path, "http://team:5000") == "http://team:5000"


def test_live_export_sends_each_finished_experiment(tmp_path: Path, empty_store: Path) -> None:
    uri = store(empty_store, tmp_path)
    warned: list[Notice] = []
    live = LiveExport(uri, "val_bpb", warned.append)
    for experiment in experiments()[:2]:
        live(Notice("not an experiment"))
        live(ExperimentFinished(experiment, None))
    live.close(timeout=60)
    assert sorted(runs_by_id(uri)) == ["0001", "0002"] and warned == []


def test_live_export_to_an_unusable_store_warns_once_and_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    warned: list[Notice] = []
    live = LiveExport(f"sqlite:///{blocker / 'mlflow.db'}", "val_bpb", warned.append)
    for experiment in experiments()[:2]:
        live(ExperimentFinished(experiment, None))
    live.close(timeout=60)
    assert [notice.level for notice in warned] == ["warning"]
    assert "later failures are not reported" in warned[0].text and str(blocker) in warned[0].text


def test_without_mlflow_the_export_says_how_to_install_it_and_the_module_never_imports_it() -> None:
    code = (
        "import sys\n"
        "from arsup.core.mlflow_export import ExportError, LiveExport, MlflowExport\n"
        "print('mlflow' in sys.modules)\n"
        "sys.modules['mlflow'] = None\n"
        "for make in (lambda: MlflowExport('sqlite:///x.db', 'val_bpb'), lambda: LiveExport('x', 'm', print)):\n"
        "    try:\n"
        "        make()\n"
        "    except ExportError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["False"] + ["MLflow is not installed: pip install 'arsup[mlflow]'"] * 2


def test_a_run_that_fails_half_way_is_not_taken_for_exported(tmp_path: Path, empty_store: Path) -> None:
    uri = store(empty_store, tmp_path)
    broken = experiments()[0]
    broken.metrics["bad!name"] = 1.0  # MLflow refuses the name once the run exists
    with pytest.raises(ExportError, match=f"MLflow export to {uri} failed: .*bad!name"):
        MlflowExport(uri, "val_bpb").export([broken])
    assert runs_by_id(uri) == {}
    assert MlflowExport(uri, "val_bpb").export(experiments()[:1]) == 1


def test_a_live_night_and_the_export_command_agree(
    tmp_path: Path, empty_store: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    from arsup import cli, config
    from arsup.core.agents.script import ScriptAgent
    from arsup.core.loop import Engine
    from arsup.core.journal import Journal
    from arsup.headless import run_headless
    from tests.conftest import edit, make_project, write_script

    root = make_project(tmp_path / "repo")
    uri = store(empty_store, tmp_path / "tracker")
    cfg = config.load(root, {"export": {"mlflow": True, "mlflow_uri": uri}, "acceptance": {"mode": "greedy"}})
    script = write_script(
        root,
        {"hypothesis": "raise LR", "edits": edit("LR = 0.0001", "LR = 0.003")},
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 128")},
    )
    assert run_headless(Engine(cfg, root, ScriptAgent(script), tag="live"), io.StringIO()) == 0
    recorded = {e.id: e for e in Journal(root).experiments("live")}
    exported = runs_by_id(uri, "live")
    assert sorted(exported) == sorted(recorded) and len(recorded) == 3  # the baseline and both proposals
    for id_, run in exported.items():
        assert run.data.tags["arsup.status"] == recorded[id_].status
        assert run.data.metrics.get("val_bpb") == recorded[id_].metric
    assert cli.main(["export", "mlflow", "--dir", str(root), "--uri", uri]) == 0
    assert "exported 0 new of 3 experiments of tag live" in capsys.readouterr().out  # nothing twice
    assert cli.main(["export", "mlflow", "--dir", str(root), "--tag", "nope", "--uri", uri]) == 2
    assert "no experiments of tag 'nope'" in capsys.readouterr().err


@pytest.fixture
def mlflow_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's own HTTP retry settings, as a person who set none has them (and put back after the test)."""
    for name in FAIL_FAST:
        monkeypatch.delenv(name, raising=False)


def dead_port() -> int:
    """A port on this machine that nothing listens on: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def unavailable() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 that answers 503 to everything; its URL and the paths it was asked."""
    asked: list[str] = []

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
            asked.append(self.path)
            self.send_response(503)
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


@pytest.mark.usefixtures("mlflow_defaults")
def test_live_export_to_a_dead_server_gives_up_in_seconds_and_counts_what_it_missed() -> None:
    # MLflow's defaults retry a refused connection for about 4 minutes; the exit used to wait 60 s, then say nothing.
    warned: list[Notice] = []
    live = LiveExport(f"http://127.0.0.1:{dead_port()}", "val_bpb", warned.append)
    for experiment in experiments()[:3]:
        live(ExperimentFinished(experiment, None))
    started = time.monotonic()
    assert live.close(timeout=60) == 3  # none reached it
    assert time.monotonic() - started < 15
    assert [notice.level for notice in warned] == ["warning"]


def test_live_export_to_a_server_answering_503_is_short_and_a_persons_own_settings_win(
    mlflow_defaults: None, unavailable: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, asked = unavailable
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    live = LiveExport(url, "val_bpb", lambda notice: None)
    live(ExperimentFinished(experiments()[0], None))
    started = time.monotonic()
    assert live.close(timeout=60) == 1
    assert time.monotonic() - started < 15 and asked  # it was asked, and the answer taken as final soon
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == FAIL_FAST["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]


def test_a_night_ending_with_experiments_on_their_way_says_what_it_waits_for(
    tmp_path: Path, mlflow_defaults: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from arsup import config
    from arsup.core.agents.script import ScriptAgent
    from arsup.core.loop import Engine
    from arsup.headless import EXPORT_WAIT_S, run_headless
    from tests.conftest import edit, make_project, write_script

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    with socket.socket() as silent:  # takes connections and never answers: each request waits its timeout
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        root = make_project(tmp_path / "repo")
        cfg = config.load(root, {"export": {"mlflow": True, "mlflow_uri": url}, "acceptance": {"mode": "greedy"}})
        script = write_script(root, {"hypothesis": "raise LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
        out = io.StringIO()
        started = time.monotonic()
        assert run_headless(Engine(cfg, root, ScriptAgent(script), tag="live"), out) == 0
        took = time.monotonic() - started
    said = out.getvalue()
    assert f"arsup: waiting up to {EXPORT_WAIT_S} s for the MLflow server at {url}" in said, said
    assert f"did not reach the MLflow server at {url}; `arsup export mlflow --uri {url}` sends them" in said
    assert took < 30, said


def test_ctrl_c_gives_up_the_wait_for_a_server_that_never_answers(tmp_path: Path, mlflow_defaults: None) -> None:
    import signal

    from tests.conftest import edit, make_project, write_script

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        root = make_project(tmp_path / "repo", export={"mlflow": True, "mlflow_uri": url})
        script = write_script(root, {"hypothesis": "raise LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
        night = subprocess.Popen(
            [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "live"],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "MLFLOW_HTTP_REQUEST_TIMEOUT": "120"},  # each request would wait two minutes
        )
        assert night.stdout is not None
        said = []
        while "waiting up to" not in (line := night.stdout.readline()):
            assert line, "".join(said)
            said.append(line)
        interrupted = time.monotonic()
        night.send_signal(signal.SIGINT)
        rest = night.communicate(timeout=30)[0]
    assert time.monotonic() - interrupted < 10
    assert f"did not reach the MLflow server at {url}" in rest and "Traceback" not in rest, rest
    assert night.returncode == 0


@pytest.mark.usefixtures("mlflow_defaults")
def test_a_ctrl_c_the_instant_the_wait_is_said_still_says_what_was_not_sent() -> None:
    # CI sent SIGINT right after reading the wait line; it landed before the wait began and the count was lost.
    import io

    from arsup.headless import _close_export

    class InterruptedOnceSaid(io.StringIO):
        def write(self, text: str) -> int:
            written = super().write(text)
            if "waiting up to" in self.getvalue() and not getattr(self, "interrupted", False):
                self.interrupted = True
                raise KeyboardInterrupt
            return written

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        live = LiveExport(url, "val_bpb", lambda notice: None)
        live(ExperimentFinished(experiments()[0], None))
        out = InterruptedOnceSaid()
        _close_export(live, out)
    assert f"1 experiments did not reach the MLflow server at {url}" in out.getvalue(), out.getvalue()
    started = time.monotonic()
    live.close(timeout=30)  # the server is gone: its worker gives up, and no thread outlives the test
    assert time.monotonic() - started < 30 and "arsup-mlflow" not in [t.name for t in threading.enumerate()]
