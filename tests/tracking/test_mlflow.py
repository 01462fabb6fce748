"""logger=mlflow against a real ``mlflow server`` (sqlite backend, artifacts served by it) on 127.0.0.1.

One server for the module; the last test stops it in the middle of a run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
import yaml
from mlflow.store.db import utils as mlflow_db_utils
from mlflow.tracking import MlflowClient  # in the test extra: never skipped
from tensorboard.backend.event_processing import event_accumulator
from tests.helpers.commands import TINY_ARGS, strf_run
from tests.helpers.runs import Interrupt, interrupt_after, tiny_config

from strf_runner.cli import report_main
from strf_runner.errors import StrfRunnerWarning
from strf_runner.experiment import run_experiment
from strf_runner.identity import flatten, volatile
from strf_runner.tracking.base import EPOCH_SCALARS, short_value
from strf_runner.tracking.mlflow import MLflowLoggerConfig


class Server:
    """``mlflow server`` in its own process group, stopped by ``stop``."""

    def __init__(self, root) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{port}"
        exe = shutil.which("mlflow")
        cmd = [exe] if exe else [sys.executable, "-m", "mlflow"]
        self.log = open(root / "server.log", "w")
        self.process = subprocess.Popen(
            cmd + ["server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
                   str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError("mlflow server did not answer within 120 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("mlflow_server"))
    yield running
    running.stop()


def mlflow_config(tmp_path, uri: str, experiment: str, **kwargs):
    cfg = tiny_config(tmp_path, **kwargs)
    cfg.logger = {"mlflow": MLflowLoggerConfig(tracking_uri=uri, experiment_name=experiment)}
    return cfg


def history_of(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


@pytest.mark.e2e
def test_a_sweep_is_one_experiment_of_grouped_runs_with_params_curves_tables_and_its_aggregate(server, tmp_path):
    sweep_root = tmp_path / "multirun"
    done = strf_run(["-m", "frontend=native,leaf", "seed=0,1", "logger=[tensorboard,mlflow]",
                     f"logger.mlflow.tracking_uri={server.uri}", f"sweep_root={sweep_root}", *TINY_ARGS],
                    tmp_path / "cache", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "logger" not in done.stderr, done.stderr[-3000:]  # no tracker warning
    (sweep,) = [p.parent for p in sweep_root.glob("*/*/multirun.yaml")]
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name(str(sweep.resolve()))
    assert experiment is not None, [e.name for e in client.search_experiments()]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    run_dirs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert set(runs) == {d.name for d in run_dirs} | {"aggregate"}

    for run_dir in run_dirs:
        record = json.loads((run_dir / "tracking.json").read_text())["mlflow"]
        run = client.get_run(record["run_id"])
        assert run.info.run_id == runs[run_dir.name].info.run_id and run.info.status == "FINISHED"
        config = flatten(yaml.safe_load((run_dir / "config.yaml").read_text()))
        assert run.data.params == {k: short_value(v, 6000) for k, v in config.items() if not volatile(k)}
        assert run.data.tags["frontend"] == config["frontend.name"] and run.data.tags["seed"] == str(config["seed"])
        summary = json.loads((run_dir / "summary.json").read_text())
        assert run.data.tags["config_hash"] == summary["config_hash"]
        assert run.data.tags["strf.status"] == "finished" and run.data.tags["strf.run_dir"] == str(run_dir.resolve())
        history = pd.read_csv(run_dir / "history.csv").set_index("epoch")
        for key in EPOCH_SCALARS:
            logged = history_of(client, run.info.run_id, key)
            assert sorted(logged) == list(history.index), key
            assert [logged[e] for e in history.index] == pytest.approx(history[key].tolist(), rel=1e-5), key
        for key in ("test_mean_cc_norm", "test_median_cc_norm", "test_n_valid", "n_params"):
            assert run.data.metrics[key] == pytest.approx(summary[key], rel=1e-6), key
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"neurons.csv", "history.csv", "summary.json"}
        copy = client.download_artifacts(run.info.run_id, "neurons.csv", str(tmp_path / run_dir.name))
        assert open(copy, "rb").read() == (run_dir / "neurons.csv").read_bytes()

    aggregate = runs["aggregate"]
    assert {"report.md", "comparison.png", "arms.csv", "comparisons.csv"} <= {
        a.path for a in client.list_artifacts(aggregate.info.run_id)}
    (diff,) = pd.read_csv(sweep / "aggregate" / "comparisons.csv")["mean_diff"]
    assert aggregate.data.metrics["sweep/frontend_leaf diff_vs_baseline"] == pytest.approx(diff, rel=1e-5)

    events = event_accumulator.EventAccumulator(str(sweep / "aggregate" / "tb"), size_guidance={"images": 0})
    events.Reload()  # the sweep's TensorBoard dir: its aggregate beside the runs' <run>/tb
    assert "comparison" in events.Tags()["images"] and "report.md/text_summary" in events.Tags()["tensors"]

    report_main([str(sweep), "--logger", "mlflow", "--tracking-uri", server.uri, "--out", str(tmp_path / "again")])
    names = [r.info.run_name for r in client.search_runs([experiment.experiment_id])]
    assert sorted(names) == sorted([d.name for d in run_dirs] + ["aggregate", "aggregate"])  # no run logged twice


@pytest.mark.e2e
def test_strf_report_logs_a_sweep_made_without_a_tracker(server, tmp_path, capsys):
    sweep_root = tmp_path / "multirun"
    done = strf_run(["-m", "seed=0,1", f"sweep_root={sweep_root}", *TINY_ARGS], tmp_path / "cache", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = [p.parent for p in sweep_root.glob("*/*/multirun.yaml")]
    report_main([str(sweep), "--logger", "mlflow", "--tracking-uri", server.uri])
    assert "logged to mlflow" in capsys.readouterr().out
    client = MlflowClient(server.uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name(str(sweep.resolve())).experiment_id])}
    for run_dir in sorted(p.parent for p in sweep.glob("*/summary.json")):
        run = runs[run_dir.name]
        assert run.info.status == "FINISHED" and run.data.tags["seed"] == run_dir.name[-1]  # the varying key
        history = pd.read_csv(run_dir / "history.csv")
        assert sorted(history_of(client, run.info.run_id, "val_cc_norm")) == history["epoch"].tolist()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert run.data.metrics["test_mean_cc_norm"] == pytest.approx(summary["test_mean_cc_norm"], rel=1e-6)
        assert not (run_dir / "tracking.json").exists()  # a finished run dir is never written into


def test_a_resumed_run_continues_its_own_mlflow_run_and_a_failed_one_says_why(server, tmp_path):
    cfg = mlflow_config(tmp_path, server.uri, "resume-test", max_epochs=5)

    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "run", on_epoch_end=interrupt_after(2))
    client = MlflowClient(server.uri)
    (first,) = client.search_runs([client.get_experiment_by_name("resume-test").experiment_id])
    assert first.info.status == "KILLED" and first.data.tags["strf.status"] == "interrupted"
    cfg.resume = True
    run_experiment(cfg, tmp_path / "run")
    (run,) = client.search_runs([client.get_experiment_by_name("resume-test").experiment_id])
    assert run.info.run_id == first.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["strf.status"] == "finished"
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    logged = client.get_metric_history(run.info.run_id, "val_cc_norm")
    assert [m.step for m in logged] == [1, 2, 3, 4, 5]  # each epoch once
    assert [m.value for m in logged] == pytest.approx(history["val_cc_norm"].tolist(), rel=1e-5)

    def boom(record, best, best_epoch, max_epochs):
        raise RuntimeError("the readout exploded")

    with pytest.raises(RuntimeError):
        run_experiment(mlflow_config(tmp_path, server.uri, "failure-test"), tmp_path / "failing", on_epoch_end=boom)
    (failed,) = client.search_runs([client.get_experiment_by_name("failure-test").experiment_id])
    assert failed.info.status == "FAILED" and failed.data.tags["strf.error"] == "the readout exploded"


def test_a_sqlite_store_that_cannot_be_opened_is_one_warning_without_mlflows_retries(tmp_path, monkeypatch):
    store = tmp_path / "store.db"
    store.mkdir()  # a directory where the database file should be: sqlite cannot open it, for any user
    engines = []  # each try of MLflow's engine set-up (ten over about 100 s when the file cannot be opened)
    create = mlflow_db_utils.create_sqlalchemy_engine
    monkeypatch.setattr(mlflow_db_utils, "create_sqlalchemy_engine", lambda uri: engines.append(uri) or create(uri))
    uri = f"sqlite:///{store}"
    started = time.monotonic()
    with pytest.warns(StrfRunnerWarning, match="logger mlflow failed while starting") as caught:
        result = run_experiment(mlflow_config(tmp_path, uri, "broken-store", max_epochs=2), tmp_path / "run")
    elapsed = time.monotonic() - started
    (warning,) = [str(w.message) for w in caught if "mlflow" in str(w.message)]
    assert f"logger.mlflow.tracking_uri={uri}: the store cannot be opened and written" in warning
    assert "\n" not in warning and engines == []
    assert elapsed < 30, elapsed  # today's tries took about 100 s; the run itself takes seconds
    assert result.fit.epochs_run == 2 and not (tmp_path / "run" / "tracking.json").exists()


def test_a_server_that_goes_down_mid_run_is_one_warning_and_the_run_finishes(server, tmp_path):
    """Last in the module: it stops the server."""
    cfg = mlflow_config(tmp_path, server.uri, "outage-test", max_epochs=4)

    def stop_server(record, best, best_epoch, max_epochs):
        if record.epoch == 1:
            server.stop()

    with pytest.warns(StrfRunnerWarning, match=r"logger mlflow failed while logging epoch 2: .*the run goes on") as caught:
        result = run_experiment(cfg, tmp_path / "run", on_epoch_end=stop_server)
    assert len([w for w in caught if "logger mlflow" in str(w.message)]) == 1
    assert result.fit.epochs_run == 4
    for name in ("summary.json", "neurons.csv", "history.csv", "tracking.json"):
        assert (tmp_path / "run" / name).is_file(), name
