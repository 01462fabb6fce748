"""An example NWB session of an auditory experiment, written with pynwb from a known ground truth.

``python -m strf_runner.data.nwb_example session.nwb`` writes the embedded synthetic dataset as a lab
would record it (docs/datasets/nwb.md); the NWB tests write their files with ``write_nwb``.

``write_nwb`` turns a dataset in the project's format (the synth generator's spikes and sounds) into
an NWB session: every (stimulus, repeat) is one presentation, played in a shuffled order with silent
gaps; each bin's spike count becomes that many spike times inside the bin (never on an edge), so a
correct binning gives the counts back exactly. Three layouts of the sounds, as labs store them:

* ``templates``: one ``stimulus_template`` per stimulus (a core TimeSeries, or ndx-sound's
  AcousticWaveformSeries with ``acoustic=True``), presentations in ``trials`` with a ``stimulus_name`` column;
* ``played``: one continuous played-audio TimeSeries under ``/stimulus`` covering the session, the
  presentations in a named TimeIntervals table ``presentations`` with a ``sound`` column;
* ``wav``: no sound in the file, ``<name>.wav`` files (16-bit PCM) beside it; presentations in ``epochs``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

from strf_runner.data.nwb_read import check_pynwb
from strf_runner.data.schema import DatasetContent
from strf_runner.errors import StrfRunnerError

GAP_S = 0.25
FIRST_S = 0.5


@dataclass
class Written:
    """What a test needs to check a conversion: presentations (stimulus name, the content's repeat
    index played, start) in time order, and every unit's spike times (s)."""

    path: Path
    presentations: list[tuple[str, int, float]]
    spike_times: list[np.ndarray]


def spike_times_from_counts(counts: np.ndarray, start: float, dt_s: float, rng: np.random.Generator) -> np.ndarray:
    """(T,) counts -> spike times: ``counts[k]`` times uniform in the middle 80 % of bin k after ``start``."""
    bins = np.repeat(np.arange(len(counts)), counts.astype(int))
    return start + (bins + rng.uniform(0.1, 0.9, len(bins))) * dt_s


def write_nwb(path: Path, content: DatasetContent, layout: str = "templates", rate: float | None = None,
              acoustic: bool = False,
              seed: int = 0, identifier: str = "session-1", units: slice = slice(None), extra_rows: int = 0,
              drop_last_repeat_of: str | None = None) -> Written:
    """Write ``content`` (a DatasetContent with waveforms) as an NWB session in ``layout``.

    rate: the sounds' sample rate in the file (default the content's audio_fs; another rate resamples
    them first with resample_poly). units: which neurons become this file's units. extra_rows:
    presentation rows that name no stimulus (catch trials). drop_last_repeat_of: a stimulus played one
    time fewer here.
    """
    check_pynwb()
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals

    rng = np.random.default_rng(seed)
    fs = float(content.audio_fs)
    rate = fs if rate is None else float(rate)
    dt_s = content.dt_ms / 1000.0
    order = [(s, r) for s, stim in enumerate(content.stimuli) for r in range(stim.responses.shape[1])
             if not (stim.name == drop_last_repeat_of and r == stim.responses.shape[1] - 1)]
    order = [order[i] for i in rng.permutation(len(order))]
    starts, t = [], FIRST_S
    for s, _ in order:
        starts.append(t)
        t += content.stimuli[s].n_bins * dt_s + GAP_S
    session_end = t + 1.0
    neurons = list(range(len(content.neuron_ids)))[units]
    spikes = [np.sort(np.concatenate([spike_times_from_counts(content.stimuli[s].responses[n, r], start, dt_s, rng)
                                      for (s, r), start in zip(order, starts)])) for n in neurons]

    nwb = NWBFile(session_description=f"synthetic auditory session ({layout})", identifier=identifier,
                  session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device(name="probe")
    groups = [nwb.create_electrode_group(name=f"shank{i}", description="32-channel shank", location=loc,
                                         device=device) for i, loc in enumerate(("A1", "AAF"))]
    nwb.add_unit_column(name="quality", description="spike sorting label")
    nwb.add_unit_column(name="snr", description="signal-to-noise ratio")
    for n, times in zip(neurons, spikes):
        nwb.add_unit(spike_times=times, id=int(100 + n), electrode_group=groups[n % 2],
                     quality="good" if n % 3 else "mua", snr=float(1.0 + n))

    def sound(s: int) -> np.ndarray:
        x = content.stimuli[s].waveform.astype(np.float64)
        if rate != fs:
            up, down = _ratio(rate, fs)
            x = scipy.signal.resample_poly(x, up, down)
        return x

    names = [stim.name for stim in content.stimuli]
    if layout == "templates":
        nwb.add_trial_column(name="stimulus_name", description="the sound played")
        nwb.add_trial_column(name="stimulus_type", description="the kind of sound")
        for s, name in enumerate(names):
            data = sound(s).astype(np.float32)
            if acoustic:
                series = _acoustic()(name=name, data=data, rate=rate, description="stimulus sound")
            else:
                series = TimeSeries(name=name, data=data, rate=rate, unit="Pa", description="stimulus sound")
            nwb.add_stimulus_template(series)
        add = lambda start, stop, name, kind: nwb.add_trial(  # noqa: E731
            start_time=start, stop_time=stop, stimulus_name=name, stimulus_type=kind)
    elif layout == "played":
        n_total = int(round(session_end * rate))
        played = np.zeros(n_total, dtype=np.float32)
        for (s, _), start in zip(order, starts):
            x = sound(s)
            i0 = int(round(start * rate))
            played[i0:i0 + len(x)] = x
        nwb.add_stimulus(TimeSeries(name="speaker", data=played, rate=rate, starting_time=0.0, unit="V",
                                    description="the speaker signal, recorded"))
        table = TimeIntervals(name="presentations", description="sound presentations")
        table.add_column(name="sound", description="the sound played")
        table.add_column(name="stimulus_type", description="the kind of sound")
        nwb.add_time_intervals(table)
        add = lambda start, stop, name, kind: table.add_interval(  # noqa: E731
            start_time=start, stop_time=stop, sound=name, stimulus_type=kind)
    elif layout == "wav":
        for s, name in enumerate(names):
            soundfile.write(path.parent / f"{name}.wav", sound(s), int(rate), subtype="PCM_16")
        nwb.add_epoch_column(name="stimulus", description="the sound played")
        nwb.add_epoch_column(name="stimulus_type", description="the kind of sound")
        add = lambda start, stop, name, kind: nwb.add_epoch(  # noqa: E731
            start_time=start, stop_time=stop, stimulus=name, stimulus_type=kind)
    else:
        raise ValueError(layout)
    rows = [(starts[i], starts[i] + content.stimuli[s].n_bins * dt_s, names[s], content.stimuli[s].type)
            for i, (s, _) in enumerate(order)]
    rows += [(session_end - 0.6 + 0.1 * i, session_end - 0.55 + 0.1 * i, "", "catch") for i in range(extra_rows)]
    for row in sorted(rows):
        add(*row)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    presentations = [(names[s], r, start) for (s, r), start in zip(order, starts)]
    return Written(path, presentations, spikes)


def _acoustic() -> type:
    from ndx_sound import AcousticWaveformSeries  # pip install ndx-sound

    return AcousticWaveformSeries


def _ratio(to: float, frm: float) -> tuple[int, int]:
    r = (Fraction(to) / Fraction(frm)).limit_denominator(1000)
    return r.numerator, r.denominator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m strf_runner.data.nwb_example",
                                     description="Write the embedded synthetic dataset as an NWB session.")
    parser.add_argument("out", type=Path, help="the NWB file to write (WAVs go beside it with --layout wav)")
    parser.add_argument("--layout", choices=("templates", "played", "wav"), default="templates",
                        help="where the sounds go: stimulus templates, one played-audio series, or WAV files")
    parser.add_argument("--synth-seed", type=int, default=0, help="the synthetic dataset's seed")
    args = parser.parse_args(argv)
    from strf_runner.data.synth import SynthDatasetConfig, generate_synth

    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        written = write_nwb(args.out, generate_synth(SynthDatasetConfig(seed=args.synth_seed)), layout=args.layout)
    except StrfRunnerError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"{written.path}: {len(written.spike_times)} units, {len(written.presentations)} presentations "
              f"({args.layout})")


if __name__ == "__main__":
    main()
