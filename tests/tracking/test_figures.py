"""analysis=full: the run's figures reach the trackers (TensorBoard images, MLflow artifacts) with its tables."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing import event_accumulator

from tests.helpers.commands import TINY_ARGS, strf_run


@pytest.mark.slow  # 20 s: analysis=full on a tiny run; the tables and curves are in the default suite
def test_analysis_figures_are_tensorboard_images_and_mlflow_artifacts(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = strf_run(["analysis=full", "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={store}",
                     f"hydra.run.dir={tmp_path / 'run'}", *TINY_ARGS], tmp_path / "cache", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "run"
    pngs = sorted(p.name for p in (run_dir / "analysis").glob("*.png"))
    assert len(pngs) >= 3, pngs

    client = MlflowClient(store)
    run = client.get_run(json.loads((run_dir / "tracking.json").read_text())["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.info.experiment_id == client.get_experiment_by_name(
        "strf-runner").experiment_id
    assert sorted(a.path.removeprefix("figures/") for a in client.list_artifacts(run.info.run_id, "figures")) == pngs
    assert (tmp_path / "mlartifacts").is_dir()  # a local store keeps its artifacts beside it

    events = event_accumulator.EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == sorted(f"figures/{p.removesuffix('.png')}" for p in pngs)
