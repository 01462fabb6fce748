"""``strf-run``: the Hydra entry point. Thin: compose and validate the config, call run_experiment.

Errors a user causes (an unknown key, a wrong type, a missing file) are printed as one line
without a traceback; ``--debug`` (or HYDRA_FULL_ERROR=1) shows the full traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console

from strf_runner.compose import register_configs
from strf_runner.config import RunConfig, TrackerConfig, resolve_config
from strf_runner.entry import error_line, one_line_errors, setup, version_line
from strf_runner.errors import ConfigError, StrfRunnerError, TrainingError
from strf_runner.exit_status import INTERRUPTED, REFUSED, RUN_FAILED, SWEEP_JOBS
from strf_runner.results.rundir import ANALYSIS, FAILED, HYDRA_RECORD, LAST_STATE, RunDir
from strf_runner.results.summary import RunSummary
from strf_runner.training.device import keep_freed_memory

PROG = "strf-run"


@hydra.main(version_base="1.3", config_path="pkg://strf_runner.conf", config_name="config")
def _task(cfg: DictConfig) -> float:
    """One run. Returns its best validation score: what a sweeper (Optuna) optimises, never the test set.
    Runs in the job's own process under the local_parallel and SLURM launchers, so process-wide settings
    a run's speed needs (``keep_freed_memory``) are made here, not in ``main``."""
    keep_freed_memory()
    from strf_runner.display import epoch_progress, summary_table
    from strf_runner.experiment import run_experiment

    run_cfg: RunConfig = OmegaConf.to_object(cfg)
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    label = f"{run_cfg.frontend.name}->{run_cfg.model.name} seed {run_cfg.seed}"
    out = Console()
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    resume_hint = "re-run the sweep" if sweep else f"add resume=true hydra.run.dir={job_dir} to the same command"
    try:
        resolved = resolve_config(run_cfg)
        if run_cfg.cv.folds is not None and run_cfg.cv.fold is None:  # every fold, one after another
            from strf_runner.crossval import run_cv

            cv = run_cv(resolved, job_dir, records=hydra_records(cfg, hydra_cfg),
                        progress=lambda f: epoch_progress(f"{label} fold {f}", Console(stderr=True)),
                        analyze=analysis_figures(out) if run_cfg.analysis == "full" else None)
            from strf_runner.display import cv_table

            out.print(cv_table(cv.summary))
            out.print(f"results: {cv.cv_dir}", soft_wrap=True, highlight=False)
            return best_validation_score(cv.summary)
        if sweep and run_cfg.reuse_finished:
            from strf_runner.data.loading import dataset_identity
            from strf_runner.sweep import prepare_resume, reuse_finished

            roots = [run_cfg.sweep_root, hydra_cfg.sweep.dir]
            data = dataset_identity(run_cfg.dataset)
            try:
                summary = reuse_finished(resolved.hash, data, job_dir, roots)
                interrupted = None if summary is not None else prepare_resume(resolved.hash, data, job_dir, roots)
            except StrfRunnerError as err:  # this job's own dir, finished before, is unreadable or on other data
                print(f"{PROG}: {label}: {err}; left as it is (strf-report lists it); the sweep goes on",
                      file=sys.stderr)
                return math.nan
            if summary is not None:
                out.print(f"{label}: already finished in {summary.reused_from}; reused", soft_wrap=True)
                assemble_fold_cv(job_dir, run_cfg, out)
                return best_validation_score(summary)
            if interrupted is not None:
                out.print(f"{label}: resuming the interrupted run {interrupted}", soft_wrap=True)
                resolved = resolved.resuming()
        group = None
        if sweep:
            from strf_runner.sweep import sweep_group

            group = sweep_group(hydra_cfg.sweep.dir, list(hydra_cfg.overrides.task))
        with epoch_progress(label, Console(stderr=True)) as on_epoch_end:
            result = run_experiment(resolved, job_dir, on_epoch_end=on_epoch_end,
                                    records=hydra_records(cfg, hydra_cfg), group=group,
                                    analyze=analysis_figures(out) if run_cfg.analysis == "full" else None)
    except KeyboardInterrupt:
        stopped = interrupted_run(job_dir)
        if stopped is not None:
            print(f"{PROG}: {label} interrupted; its last finished epoch is in {stopped / LAST_STATE}: {resume_hint}",
                  file=sys.stderr)
        raise
    except Exception as err:  # Ctrl-C (KeyboardInterrupt) is not an Exception: it still stops a sweep
        message = error_line(err)
        stopped = interrupted_run(job_dir)
        if stopped is not None and "resume=true" not in message:
            message += f"; its last finished epoch is in {stopped / LAST_STATE}: {resume_hint}"
        if not sweep:
            remove_if_empty(job_dir, Path(hydra_cfg.run.dir))
            if isinstance(err, (StrfRunnerError, OSError)):  # one line, before Hydra adds its own error report
                print(f"{PROG}: error: {message}", file=sys.stderr)
                sys.exit(RUN_FAILED if isinstance(err, TrainingError) else REFUSED)  # training failed, or refused
            raise
        from strf_runner.sweep import record_failure

        try:
            record_failure(job_dir, run_cfg, err, message)
            where = f" (see {job_dir / FAILED})"
        except OSError as record_err:  # a full disk cannot take failed.json either
            where = f" (and {error_line(record_err)})"
        print(f"{PROG}: {label} failed: {message}{where}; the sweep goes on", file=sys.stderr)
        return math.nan
    out.print(summary_table(result.summary))
    out.print(f"results: {result.run_dir}", soft_wrap=True, highlight=False)
    assemble_fold_cv(job_dir, run_cfg, out)
    return best_validation_score(result.summary)


def assemble_fold_cv(job_dir: Path, cfg: RunConfig, out: Console) -> None:
    """After a sweep's fold job (cv.fold set) finished: assemble its CV dir (the job dir's parent) if every
    fold of it has finished now. A CV whose folds cannot be joined is one line on stderr; the sweep goes on."""
    if cfg.cv.fold is None:
        return
    from strf_runner.results.cv import assemble_if_complete

    try:
        summary = assemble_if_complete(job_dir.parent)
    except StrfRunnerError as err:
        print(f"{PROG}: cannot assemble the cross-validation {job_dir.parent}: {err}", file=sys.stderr)
        return
    if summary is not None:
        from strf_runner.display import cv_table

        out.print(cv_table(summary))
        out.print(f"cross-validation: {job_dir.parent}", soft_wrap=True, highlight=False)


def analysis_figures(out: Console) -> Callable[[Path], dict[str, Path]]:
    """``analysis=full``: strf-analyze's figures of the finished run, written into <run>/analysis; the
    PNGs by name (``figures/<name>.png``) for the experiment trackers."""

    def analyze(run_dir: Path) -> dict[str, Path]:
        from strf_runner.analysis.run_analysis import analyze_run

        index = analyze_run(run_dir, log=lambda step: print(f"analysis: {step}", file=sys.stderr))
        out.print(f"analysis: {len(index['files'])} files in {run_dir / ANALYSIS}", soft_wrap=True)
        return {f"figures/{name}": run_dir / ANALYSIS / name for name in index["files"].values()
                if name.endswith(".png")}

    return analyze


def resumable(job_dir: Path) -> bool:
    """The run in ``job_dir`` stopped after saving a training state, and no other run owns the dir."""
    run = RunDir(job_dir)
    return run.interrupted and not run.in_use


def interrupted_run(job_dir: Path) -> Path | None:
    """The run dir that ``resume=true`` would continue: ``job_dir`` itself, or, for a cross-validation, its
    interrupted fold; None where neither is ``resumable``."""
    from strf_runner.results.cv import FOLD

    candidates = [job_dir, *sorted(job_dir.glob(f"{FOLD}[0-9]*"))]
    return next((path for path in candidates if resumable(path)), None)


def best_validation_score(summary: RunSummary) -> float:
    """What a sweeper optimises: the best score of the monitor early stopping used (it may have fallen
    back from val_cc_norm to val_cc where the validation data have no repeats)."""
    return math.nan if summary.best_score is None else summary.best_score


def hydra_records(cfg: DictConfig, hydra_cfg: DictConfig) -> dict[str, str]:
    """Hydra's record of a run (.hydra/config.yaml, hydra.yaml, overrides.yaml), written by the run
    itself once it owns its dir (conf sets hydra.output_subdir=null so that Hydra writes nothing first)."""
    return {
        f"{HYDRA_RECORD}/config.yaml": OmegaConf.to_yaml(cfg),
        f"{HYDRA_RECORD}/hydra.yaml": OmegaConf.to_yaml({"hydra": OmegaConf.to_container(hydra_cfg, resolve=False)}),
        f"{HYDRA_RECORD}/overrides.yaml": OmegaConf.to_yaml(list(hydra_cfg.overrides.task)),
    }


def remove_if_empty(job_dir: Path, as_written: Path | None = None) -> None:
    """A run refused before it wrote anything leaves no folder: remove the empty one Hydra made for it,
    and the folders above it that are now empty, up to the working directory (outputs/runs/<date>).
    ``as_written``: hydra.run.dir before Hydra normalised it, walked up as well (a refused
    ``run_name=a/../b`` made the folder ``<time>_a`` on the way)."""
    cwd = Path.cwd().resolve()
    for folder in (job_dir.resolve(), *([cwd / as_written] if as_written is not None else [])):
        while folder != cwd and cwd in folder.parents:
            if folder.name not in ("", ".", ".."):
                try:
                    folder.rmdir()  # only ever removes an empty folder
                except FileNotFoundError:
                    pass
                except OSError:
                    break
            folder = folder.parent


def with_fold_sweep(args: list[str]) -> list[str]:
    """strf-run's arguments, with ``cv.fold=0,...,k-1`` appended last in a sweep (``-m``) given ``cv.folds=k``:
    each fold is a job, the innermost loop of the sweep, so that the k folds of an arm are jobs num // k
    (``compose.cv_subdir`` nests them in one CV dir). ConfigError for cv overrides a sweep cannot take."""
    if not {"-m", "--multirun"} & set(args):
        return args
    given = {a.split("=", 1)[0].lstrip("+"): a.split("=", 1)[1] for a in args if "=" in a}
    if "cv.fold" in given:
        raise ConfigError("cv.fold is set by strf-run itself in a sweep (every fold of cv.folds=k is a job): drop cv.fold")
    text = given.get("cv.folds")
    if text is None or text.strip() == "null":
        return args
    try:
        folds = int(text)
    except ValueError:
        raise ConfigError(f"cv.folds={text!r} must be one whole number >= 2 in a sweep (the folds of every arm)") from None
    if folds < 2:
        raise ConfigError(f"cv.folds={folds!r} must be >= 2 (or null: no cross-validation)")
    return [*args, f"cv.fold={','.join(map(str, range(folds)))}"]


def main() -> None:
    """Console entry point of ``strf-run``."""
    if "--version" in sys.argv[1:]:  # before Hydra, which would read it as an override
        print(version_line(PROG))
        return
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    show_traceback = debug or os.environ.get("HYDRA_FULL_ERROR") == "1"
    setup(PROG, trains=True)
    register_configs()
    try:
        with one_line_errors(PROG, HydraException, OmegaConfBaseException, ValueError, AssertionError,
                             show_traceback=show_traceback):
            sys.argv[1:] = with_fold_sweep(sys.argv[1:])
            _task()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    if SWEEP_JOBS.exit_status:  # a sweep, some of whose runs did not finish
        sys.exit(SWEEP_JOBS.exit_status)


if __name__ == "__main__":
    main()


def given_path(text: str) -> Path:
    """An argparse type: a path that is not empty (``Path("")`` would quietly mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (a variable that expanded to nothing?): give a folder")
    return Path(text)


def with_version(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` with a ``--version`` flag that prints the command and strf-runner's version."""
    parser.add_argument("--version", action="version", version=version_line(parser.prog))
    return parser


def report_parser() -> argparse.ArgumentParser:
    """strf-report's command line (also what tests/test_docs.py checks the documented commands against)."""
    parser = argparse.ArgumentParser(
        prog="strf-report",
        description="Aggregate the runs under one or more sweep dirs into one comparison: per arm (front-end x "
        "model x any other varied key) test cc_norm with a 95 percent CI from a bootstrap over test stimuli and, within "
        "them, neurons (over neurons only where the runs' test predictions or dataset file are missing; the "
        "tables say which), and mean +- SD over seeds; per arm against its baseline the paired difference and its "
        "CI, a sign-flip test over test stimuli, a Wilcoxon signed-rank test over neurons, and the shares of "
        "stimuli and neurons improved. A cross-validated run (cv.folds) is one run scored on all stimuli from its "
        "folds' joined predictions. Writes CSV, report.md and comparison.png; lists failed and unfinished runs, "
        "and corrupt ones (a config.yaml, summary.json, failed.json or neurons.csv that cannot be read) with the "
        "reason.",
        epilog="Example: strf-report outputs/multirun/2026-11-28/14-03-11 --baseline frontend=native",
    )
    parser.add_argument("dirs", nargs="+", type=given_path, help="sweep dirs, folders of sweeps, or run dirs")
    parser.add_argument("--baseline", default="frontend=native", help="KEY=VALUE naming the baseline arm "
                        "(default frontend=native; each arm is compared with the arm equal to it but for this)")
    parser.add_argument("--neurons", help="score every arm on a named neuron selection only (e.g. valid73 on NS1: "
                        "the 73 single units), chosen from the runs' dataset metadata (default: every neuron)")
    parser.add_argument("--out", type=Path, help="output folder (default: <first dir>/aggregate; when the first "
                        "dir is a run dir, <run dir>-aggregate beside it, as a finished run is never written into)")
    from strf_runner.tracking.base import TRACKERS

    parser.add_argument("--logger", action="append", default=[], choices=TRACKERS.names(), metavar="KIND",
                        help=f"also log the sweep to an experiment tracker ({', '.join(TRACKERS.names())}; repeatable): runs "
                        "it does not hold yet, replayed from their files, then the aggregate, grouped under the "
                        "first dir")
    parser.add_argument("--tracking-uri", help="MLflow store for --logger mlflow (default: sqlite:///outputs/mlflow.db "
                        "in the working directory; http://host:port for a server)")
    return with_version(parser)


def report_main(argv: list[str] | None = None) -> None:
    """Console entry point of ``strf-report``: aggregate finished sweeps (or any folders of runs)."""
    args = report_parser().parse_args(argv)
    setup("strf-report")
    from strf_runner.display import wide_console
    from strf_runner.sweep import report

    with one_line_errors("strf-report"):
        logger = logger_config(args.logger, args.tracking_uri)
        report(args.dirs, baseline=args.baseline, out=args.out, console=wide_console(), neurons=args.neurons,
               logger=logger)


def logger_config(kinds: list[str], tracking_uri: str | None) -> dict[str, TrackerConfig]:
    """strf-report's --logger flags as a run's ``logger`` (each kind with its defaults), packages checked
    (ConfigError naming what to install)."""
    from strf_runner.tracking.base import TRACKERS, check_installed

    options = {kind: TRACKERS.get(kind).config() for kind in kinds}
    if tracking_uri is not None:
        if "mlflow" not in options:
            raise ConfigError("--tracking-uri is for --logger mlflow, which is not given")
        options["mlflow"].tracking_uri = tracking_uri
    for kind in options:
        check_installed(kind)
    return options


def analyze_parser() -> argparse.ArgumentParser:
    """strf-analyze's command line."""
    parser = argparse.ArgumentParser(
        prog="strf-analyze",
        description="Write the interpretability figures of finished runs into <run>/analysis/: learned vs initial "
        "filterbank and its drift, learned vs native spectrogram, STRFs of the best-predicted neurons (true beside "
        "learned on synthetic data), spectrogram-space gradient maps, waveform receptive fields with the span holding "
        "99 % of their gradient (and WAV files to listen to), and prediction traces of the best, median and worst "
        "neurons; the numbers behind each figure as CSV.",
        epilog="Example: strf-analyze outputs/runs/2026-11-28/14-03-11_leaf-linear-synth-s0 --stimulus 17",
    )
    parser.add_argument("runs", nargs="+", type=given_path, help="finished run dirs")
    parser.add_argument("--stimulus", type=int, help="dataset index of the stimulus to show (default: first test one)")
    parser.add_argument("--wav", type=int, default=3, help="receptive fields written as WAV (best neurons; default 3)")
    parser.add_argument("--fold", type=int, help="for a cross-validation dir (cv.folds=k): analyze its fold F (0..k-1)")
    return with_version(parser)


def analyze_main(argv: list[str] | None = None) -> None:
    """Console entry point of ``strf-analyze``: interpretability figures, tables and audio of finished runs."""
    args = analyze_parser().parse_args(argv)
    setup("strf-analyze")
    from strf_runner.analysis.run_analysis import analyze_run
    from strf_runner.results.cv import chosen_fold

    for given in args.runs:
        with one_line_errors("strf-analyze"):
            run = chosen_fold(given, args.fold)
            index = analyze_run(run, stimulus=args.stimulus, n_wav=args.wav,
                                log=lambda step: print(f"strf-analyze: {run}: {step}", file=sys.stderr))
        drift = index.get("mean_drift")
        print(f"{run / ANALYSIS}: {len(index['files'])} files" + (f", mean filter drift {drift:.1%}" if drift else ""))


def predict_parser() -> argparse.ArgumentParser:
    """strf-predict's command line (without its check that some input is given: ``predict_main`` makes it)."""
    from strf_runner.predict.predictor import DEFAULT_CHUNK_S

    parser = argparse.ArgumentParser(
        prog="strf-predict",
        description="Predict the recorded population's responses with a finished run's model, for sound files\n"
        "(any format libsndfile reads: WAV, FLAC, OGG, MP3, AIFF; mixed to mono, resampled to the model's rate;\n"
        "any length: long files run in chunks with the model's state carried across, so memory stays bounded)\n"
        "or for stimuli of the run's own dataset. Per input it writes:\n"
        "  <name>.h5 (or .npz)  rates (neurons x bins) with neuron ids, the model's spectrogram, provenance\n"
        "  <name>.csv           mean, SD and peak predicted rate per neuron\n"
        "  <name>.png           the spectrogram above the population response\n"
        "Files already in the output folder are not replaced unless --overwrite is given: the command stops\n"
        "before predicting anything and names the first one. An input's files are written together (all or none).",
        epilog="Examples: strf-predict outputs/runs/2026-11-28/14-03-11_leaf-linear-ns1-s0 --wav call.wav --wav probe.flac\n"
        "          strf-predict RUN_DIR --dataset-stimulus 17 --out preds/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", type=Path, help="a finished run dir (holds summary.json, model.json, best.pt)")
    parser.add_argument("--wav", action="append", type=Path, default=[], metavar="FILE",
                        help="a sound file to predict (repeat for several)")
    parser.add_argument("--dataset-stimulus", action="append", type=int, default=[], metavar="INDEX",
                        help="replay stimulus INDEX of the run's dataset in the view it was trained on (repeatable)")
    parser.add_argument("--out", type=Path, help="output folder (default: <run>/predictions)")
    parser.add_argument("--format", choices=("h5", "npz"), default="h5", help="rates file format (default h5)")
    parser.add_argument("--chunk-s", type=float, default=DEFAULT_CHUNK_S,
                        help=f"seconds of input per chunk (default {DEFAULT_CHUNK_S:g}; sets the memory used, "
                        "not the result)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG figures")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files already in the output folder (default: refuse, naming the first)")
    parser.add_argument("--fold", type=int, help="for a cross-validation dir (cv.folds=k): use the model of its fold F "
                        "(0..k-1)")
    return with_version(parser)


def predict_main(argv: list[str] | None = None) -> None:
    """Console entry point of ``strf-predict``: a finished run's predicted responses to any sound."""
    from strf_runner.predict.predictor import predict_sound, predict_stimulus, sound_name, stimulus_name

    parser = predict_parser()
    args = parser.parse_args(argv)
    setup("strf-predict")
    if not args.wav and not args.dataset_stimulus:
        parser.error("give at least one --wav FILE or --dataset-stimulus INDEX")
    import numpy as np
    from rich.table import Table

    from strf_runner.display import frame_progress, wide_console
    from strf_runner.predict.audio import open_sound
    from strf_runner.predict.outputs import prediction_files, refuse_existing, write_prediction
    from strf_runner.results.cv import chosen_fold
    from strf_runner.results.load import load_run, run_dataset
    from strf_runner.results.tables import short_id

    console = wide_console()
    table = Table("input", "duration", "bins", "mean rate", "most active neuron (its mean)", "files")
    with one_line_errors("strf-predict"):
        run = load_run(chosen_fold(args.run, args.fold))
        out = args.out if args.out is not None else run.path / "predictions"
        jobs = [(p.name, sound_name(p), lambda bar, p=p: predict_sound(run, open_sound(p), args.chunk_s, bar))
                for p in args.wav]
        content = run_dataset(run, views=(run.info["view"],)) if args.dataset_stimulus else None  # read once
        jobs += [(f"stimulus {i}", stimulus_name(content, i),
                  lambda bar, i=i: predict_stimulus(run, i, args.chunk_s, bar, content))
                 for i in args.dataset_stimulus]
        names: list[str] = []
        for _, base, _ in jobs:
            name, k = base, 1
            while name in names:  # two inputs with one stem: keep both
                k += 1
                name = f"{base}_{k}"
            names.append(name)
        if not args.overwrite:  # before any prediction is made
            refuse_existing(f for name in names for f in prediction_files(out, name, args.format, not args.no_plot).values())
        for (label, _, job), name in zip(jobs, names):
            with frame_progress(label, Console(stderr=True)) as bar:
                pred = job(bar)
            pred.name = name
            files = write_prediction(pred, out, run.path, fmt=args.format, plot=not args.no_plot,
                                     overwrite=args.overwrite)
            means = pred.rates.mean(axis=1)
            top = int(np.argmax(means))
            table.add_row(label, f"{pred.rates.shape[1] * pred.dt_ms / 1000:.2f} s", str(pred.rates.shape[1]),
                          f"{means.mean():.4g}", f"{short_id(pred.neuron_ids[top])} ({means[top]:.3g})",
                          ", ".join(p.name for p in files.values()))
    console.print(table)
    console.print(f"predictions: {out}", soft_wrap=True, highlight=False)
