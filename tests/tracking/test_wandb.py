"""logger=wandb in offline mode: the run's offline directory read back record by record.

W&B writes an offline run as ``run-<id>.wandb``: a 7-byte header (":W&B", magic, version), then
LevelDB-log framed records (32 KiB blocks; each chunk a 7-byte header: CRC, length, type) holding
``wandb_internal_pb2.Record`` protobufs. ``records`` reads them with wandb's own protobuf classes.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.helpers.runs import Interrupt, interrupt_after, tiny_config
from wandb.proto import wandb_internal_pb2  # in the test extra: never skipped

from strf_runner.experiment import run_experiment
from strf_runner.identity import flatten, volatile
from strf_runner.tracking.base import EPOCH_SCALARS, short_value
from strf_runner.tracking.wandb import WandbLoggerConfig, run_id, wait_for_a_new_folder

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    out, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # a record still being written
            break
        if kind == 0:
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def items(entries) -> dict[str, object]:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in entries}


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))


def read_run(path: Path, timeout_s: float = 60.0) -> dict:
    """The run record, the config, every history row by step, the last summary values, the exit code.
    W&B's service process writes the file after run.finish() has returned, so the file is read again
    until it holds its run and exit records (a complete session), for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = parse_run(path)
        if ("run" in out and out["exit"] is not None) or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def parse_run(path: Path) -> dict:
    out = {"history": {}, "summary": {}, "config": {}, "exit": None}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            out["config"].update(items(record.run.config.update))
        elif kind == "config":
            out["config"].update(items(record.config.update))
        elif kind == "history":
            out["history"][record.history.step.num] = items(record.history.item)
        elif kind == "summary":
            out["summary"].update(items(record.summary.update))
        elif kind == "exit":
            out["exit"] = record.exit.exit_code
    return out


def wandb_config(tmp_path, **kwargs):
    cfg = tiny_config(tmp_path, **kwargs)
    cfg.logger = {"wandb": WandbLoggerConfig()}
    return cfg


def test_an_offline_run_holds_the_config_every_epoch_the_summary_and_the_table(tmp_path):
    run_experiment(wandb_config(tmp_path, max_epochs=3), tmp_path / "run")
    (path,) = offline_runs(tmp_path / "run")
    assert path.name == f"run-{run_id(str((tmp_path / 'run').resolve()))}.wandb"
    logged = read_run(path)
    assert logged["run"].display_name == "run" and logged["run"].project == "strf-runner"
    config = flatten(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    expected = {k: short_value(v) for k, v in config.items() if not volatile(k)}
    assert {k: v for k, v in logged["config"].items() if k in expected} == expected
    assert logged["config"]["strf.config_hash"] == summary["config_hash"]
    history = pd.read_csv(tmp_path / "run" / "history.csv").set_index("epoch")
    assert sorted(logged["history"]) == list(history.index)
    for key in EPOCH_SCALARS:
        assert [logged["history"][e][key] for e in history.index] == pytest.approx(history[key].tolist(), rel=1e-5)  # history.csv keeps 6 digits
    for key in ("test_mean_cc_norm", "test_median_cc_norm", "n_params"):
        assert logged["summary"][key] == pytest.approx(summary[key], rel=1e-9), key
    assert logged["summary"]["status"] == "finished" and logged["summary"]["neurons/nrows"] == 16
    assert logged["exit"] == 0


def test_a_resumed_run_appends_to_the_same_wandb_run(tmp_path):
    cfg = wandb_config(tmp_path, max_epochs=5)

    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "run", on_epoch_end=interrupt_after(2))
    cfg.resume = True
    run_experiment(cfg, tmp_path / "run")
    first, second = (read_run(p) for p in sorted(offline_runs(tmp_path / "run"), key=lambda p: p.parent.name))
    assert first["run"].run_id == second["run"].run_id  # one W&B run; `wandb sync` joins the two pieces
    assert sorted(first["history"]) == [1, 2] and sorted(second["history"]) == [3, 4, 5]
    assert first["exit"] == 130 and first["summary"]["status"] == "interrupted"
    assert second["exit"] == 0 and second["summary"]["status"] == "finished"


def test_a_session_never_reuses_the_folder_of_one_that_started_in_the_same_second(tmp_path):
    """W&B names an offline session's folder by the second it started: a resume within that second must
    wait for the next one rather than write over the earlier session's file."""
    taken = tmp_path / f"offline-run-{time.strftime('%Y%m%d_%H%M%S')}-abc"
    taken.mkdir()
    wait_for_a_new_folder(tmp_path, "abc")
    assert not (tmp_path / f"offline-run-{time.strftime('%Y%m%d_%H%M%S')}-abc").exists()
