"""dataset=nwb: NWB files written with pynwb (and ndx-sound) from the synth generator's ground truth,
in three layouts, converted and checked against a direct binning of the written spike times, the
written sounds, and a fit as good as on the synth dataset itself."""

from __future__ import annotations

import json
import math
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from tests.helpers.data import TINY_DATASET

from strf_runner.data.cochleagram import native_cochleagram
from strf_runner.data.nwb import (
    Condition,
    NWBDatasetConfig,
    bin_spikes,
    convert_nwb,
    default_splits,
    ensure_nwb,
    nwb_files,
)
from strf_runner.data.nwb_example import write_nwb
from strf_runner.data.schema import file_sha256, read_dataset
from strf_runner.data.synth import SynthDatasetConfig, generate_synth
from strf_runner.errors import ConfigError, DatasetError, StrfRunnerWarning
from strf_runner.memory import MemoryLimitError

LAYOUTS = ("templates", "played", "wav")


@pytest.fixture(scope="module")
def truth():
    """The tiny synth dataset: 6 stimuli x 1 s, 16 neurons, 6 repeats, waveforms at 48 kHz."""
    params = {k: v for k, v in TINY_DATASET.items() if k != "name"}
    return generate_synth(SynthDatasetConfig(**params))


def convert(paths, **options):
    return convert_nwb([Path(p) for p in paths], NWBDatasetConfig(**options))


def brute_force_counts(spike_times: np.ndarray, start: float, n_bins: int, dt_s: float) -> np.ndarray:
    """Counts by a plain loop over the spikes: bin k holds start + k dt <= t < start + (k + 1) dt."""
    counts = np.zeros(n_bins)
    for t in spike_times:
        k = math.floor((t - start) / dt_s)
        if 0 <= k < n_bins:
            counts[k] += 1
    return counts


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_gives_the_written_spikes_binned_and_the_written_sounds(tmp_path, truth, layout):
    written = write_nwb(tmp_path / "session.nwb", truth, layout=layout, acoustic=layout == "templates")
    content = convert([written.path])
    dt_s = truth.dt_ms / 1000.0
    assert [s.name for s in content.stimuli] == sorted(s.name for s in truth.stimuli)
    assert content.neuron_ids == [str(100 + n) for n in range(len(truth.neuron_ids))]
    for stim in content.stimuli:
        shown = [(r, start) for name, r, start in written.presentations if name == stim.name]  # in time order
        for n, spikes in enumerate(written.spike_times):
            for j, (_, start) in enumerate(shown):
                np.testing.assert_array_equal(stim.responses[n, j], brute_force_counts(spikes, start, stim.n_bins, dt_s))
        original = next(s for s in truth.stimuli if s.name == stim.name)
        np.testing.assert_array_equal(stim.responses, original.responses[:, [r for r, _ in shown]])  # ground truth
        np.testing.assert_array_equal(stim.waveform, original.waveform)  # 48 kHz in the file: no resampling
        np.testing.assert_allclose(stim.spectrogram, native_cochleagram(original.waveform, 48000.0, 5.0), atol=1e-4)
    assert [s.type for s in content.stimuli] == [next(t.type for t in truth.stimuli if t.name == s.name)
                                                 for s in content.stimuli]
    provenance = json.loads(content.attrs["provenance"])
    assert provenance["files"][0]["identifier"] == "session-1"
    assert provenance["files"][0]["presentation_table"] == {"templates": "trials", "played": "presentations",
                                                            "wav": "epochs"}[layout]
    source = provenance["sounds"][content.stimuli[0].name]["from"]
    assert {"templates": "/stimulus_templates/", "played": "/stimulus/speaker[", "wav": ".wav"}[layout] in source


def test_a_sound_at_another_rate_is_resampled_to_the_grid(tmp_path, truth):
    written = write_nwb(tmp_path / "session.nwb", truth, layout="templates", rate=44100.0, acoustic=False)
    content = convert([written.path])
    for stim in content.stimuli:
        original = next(s for s in truth.stimuli if s.name == stim.name).waveform.astype(np.float64)
        at_44k = scipy.signal.resample_poly(original, 147, 160).astype(np.float32)  # what the file holds
        back = scipy.signal.resample_poly(at_44k.astype(np.float64), 160, 147)[: len(original)]
        expected = np.zeros(len(original), dtype=np.float32)
        expected[: len(back)] = back
        np.testing.assert_allclose(stim.waveform, expected, atol=1e-6)
        # and the round trip through 44.1 kHz keeps the sound below its new Nyquist frequency
        assert np.corrcoef(stim.waveform, original)[0, 1] > 0.95


def test_several_files_of_one_experiment_join_their_units_with_nan_for_missing_repeats(tmp_path, truth):
    n = len(truth.neuron_ids)
    short = truth.stimuli[2].name
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_nwb(tmp_path / "a" / "s1.nwb", truth, identifier="ferret-1", units=slice(0, n // 2))
    second = write_nwb(tmp_path / "b" / "s2.nwb", truth, identifier="ferret-2", units=slice(n // 2, n), seed=1,
                       drop_last_repeat_of=short)
    content = convert([first.path, second.path])
    assert content.neuron_ids[0] == "ferret-1/100" and content.neuron_ids[-1] == f"ferret-2/{100 + n - 1}"
    assert list(content.neuron_meta["session"][: n // 2]) == ["ferret-1"] * (n // 2)
    stim = next(s for s in content.stimuli if s.name == short)
    assert stim.responses.shape[1] == truth.stimuli[2].responses.shape[1]
    assert np.isnan(stim.responses[n // 2:, -1]).all()  # the second file played it once fewer
    assert not np.isnan(stim.responses[: n // 2]).any() and not np.isnan(stim.responses[n // 2:, :-1]).any()
    # a folder is its .nwb files in name order
    folder = tmp_path / "both"
    folder.mkdir()
    for w in (first, second):
        (folder / w.path.name).write_bytes(w.path.read_bytes())
    assert [p.name for p in nwb_files(str(folder))] == ["s1.nwb", "s2.nwb"]
    assert convert(nwb_files(str(folder))).neuron_ids == content.neuron_ids


def test_conditions_leave_units_and_presentations_out_and_count_them(tmp_path, truth):
    written = write_nwb(tmp_path / "session.nwb", truth, extra_rows=3)
    line = r"nwb: 6 of 16 units left out by dataset.units_where; 3 of 39 presentations left out \(3 name no stimulus\)"
    for _ in range(2):  # converting, then from the cache: the line every time
        with pytest.warns(StrfRunnerWarning, match=line):
            path = ensure_nwb(str(written.path), NWBDatasetConfig(units_where="quality==good"), tmp_path / "cache")
    content = read_dataset(path)
    assert len(content.neuron_ids) == 10 and set(content.neuron_meta["quality"]) == {"good"}
    provenance = json.loads(content.attrs["provenance"])
    assert provenance["units_left_out"] == 6 and provenance["presentations_left_out"] == 3
    numeric = convert([written.path], units_where="snr>=9", presentations_where=f"stimulus_name!={truth.stimuli[0].name}")
    assert list(numeric.neuron_meta["snr"]) == [float(s) for s in range(9, 17)]
    assert truth.stimuli[0].name not in [s.name for s in numeric.stimuli]


def test_condition_syntax_and_unknown_columns_are_config_errors():
    assert Condition.parse("quality == 'good'", "k") == Condition("quality", "==", "good")
    with pytest.raises(ConfigError, match="dataset.units_where='quality' is not a condition"):
        NWBDatasetConfig(units_where="quality")
    with pytest.raises(ConfigError, match=r"no column 'qualty'; it has \['quality', 'snr'\]"):
        Condition.parse("qualty==good", "dataset.units_where").mask(
            {"quality": np.array(["good"]), "snr": np.array([1.0])}, "dataset.units_where", "f.nwb: /units")
    with pytest.raises(ConfigError, match="only == and != compare it"):
        Condition.parse("quality>=good", "k").mask({"quality": np.array(["good"])}, "k", "t")


def test_bin_spikes_matches_a_loop_on_random_trains():
    rng = np.random.default_rng(3)
    spikes = np.sort(rng.uniform(0, 20, 3000))
    starts = np.array([0.5, 4.25, 11.0])
    counts = bin_spikes(spikes, starts, 400, 5.0)
    for r, start in enumerate(starts):
        np.testing.assert_array_equal(counts[r], brute_force_counts(spikes, start, 400, 0.005))


def test_default_splits_are_disjoint_cover_everything_and_follow_the_seed():
    for n in (3, 6, 20, 57):
        splits = default_splits(n, seed=0)
        assert sorted(splits["train"] + splits["val"] + splits["test"]) == list(range(n))
        assert len(splits["test"]) == len(splits["val"]) >= 1 and len(splits["train"]) >= 1
    assert default_splits(20, 0) == default_splits(20, 0) != default_splits(20, 1)
    assert len(default_splits(20, 0)["test"]) == 3
    with pytest.raises(DatasetError, match="2 stimuli"):
        default_splits(2, 0)


def test_the_conversion_is_cached_by_inputs_and_options(tmp_path, truth):
    written = write_nwb(tmp_path / "session.nwb", truth)
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StrfRunnerWarning)
        path = ensure_nwb(str(written.path), NWBDatasetConfig(), cache)
        stamp = path.stat().st_mtime_ns
        assert ensure_nwb(str(written.path), NWBDatasetConfig(), cache) == path and path.stat().st_mtime_ns == stamp
        assert ensure_nwb(str(written.path), NWBDatasetConfig(dt_ms=10.0), cache) != path
        write_nwb(written.path, truth, seed=5)  # other spikes, same name
        assert ensure_nwb(str(written.path), NWBDatasetConfig(), cache) != path
    assert read_dataset(path).attrs["source"] == "nwb"


# ---------------------------------------------------------------------------------------------
# bad input: one line naming the file and the object


def bare_nwb(path: Path, units: bool = True, spikes: bool = True, trials=None, columns=("stimulus_name",),
             templates=("a", "b", "c"), acquisition_end: float | None = None, sounds=None, unit_ids=(0,)) -> Path:
    """A small NWB file built to order: units (one per ``unit_ids``), a trials table with ``trials`` rows
    (start, stop, name), 0.5 s silent templates, and templates given by ``sounds``: name -> TimeSeries
    keyword arguments (data, rate, conversion ...)."""
    nwb = NWBFile(session_description="bad input", identifier="bad", session_start_time=datetime(2026, 1, 1,
                                                                                                 tzinfo=timezone.utc))
    if units and not spikes:
        nwb.add_unit_column(name="quality", description="label")
    for unit in unit_ids if units else ():
        if spikes:
            nwb.add_unit(spike_times=[0.6, 1.2, 2.3], id=unit)
        else:
            nwb.add_unit(quality="good", id=unit)
    sounds = sounds or {}
    for name in templates:
        given = {"data": np.zeros(24000, dtype=np.float32), "rate": 48000.0, **sounds.get(name, {})}
        nwb.add_stimulus_template(TimeSeries(name=name, unit="Pa", **given))
    if acquisition_end is not None:
        nwb.add_acquisition(TimeSeries(name="raw", data=np.zeros(int(acquisition_end * 100)), rate=100.0, unit="V"))
    if trials is not None:
        for c in columns:
            nwb.add_trial_column(name=c, description="the sound")
        for start, stop, name in trials:
            nwb.add_trial(start_time=start, stop_time=stop, **{c: name for c in columns})
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


GOOD_TRIALS = [(0.5, 1.0, "a"), (1.5, 2.0, "b"), (2.5, 3.0, "c"), (3.5, 4.0, "a")]


@pytest.mark.parametrize("build, message", [
    (dict(units=False, trials=GOOD_TRIALS), r"bad.nwb: no Units table \(/units\)"),
    (dict(spikes=False, trials=GOOD_TRIALS), r"bad.nwb: /units has no spike_times column \(it has \['quality'\]\)"),
    (dict(), r"bad.nwb: no presentation table \(no trials, epochs or TimeIntervals"),
    (dict(trials=GOOD_TRIALS, columns=("label",)),
     r"bad.nwb: no presentation table has a stimulus column .* trials: \['start_time', 'stop_time', 'label'\]"),
    (dict(trials=GOOD_TRIALS + [(4.5, 5.0, "d")]),
     r"stimulus 'd' has no sound .*bad.nwb: /stimulus_templates/d \(the file has \['a', 'b', 'c'\]\).*d.wav"),
    (dict(trials=[(0.5, 1.0, "a"), (1.5, 2.1, "a"), (2.5, 3.0, "b"), (3.5, 4.0, "c")]),
     r"bad.nwb: /intervals/trials row 1: stimulus 'a' lasts 0.6 s here but 0.5 s at .*row 0"),
    (dict(trials=[(0.5, 1.0, "a"), (0.9, 1.4, "b"), (2.5, 3.0, "c")]),
     r"bad.nwb: /intervals/trials rows 0 \('a', 0.5-1 s\) and 1 \('b', 0.9-1.4 s\) overlap"),
    (dict(trials=GOOD_TRIALS, acquisition_end=2.0),
     r"bad.nwb: /units unit 0 has a spike at 2.3 s, after the file's time series end \(2 s\)"),
])
def test_bad_input_is_one_line_naming_the_file_and_the_object(tmp_path, build, message):
    path = bare_nwb(tmp_path / "bad.nwb", **build)
    with pytest.raises((DatasetError, ConfigError), match=message) as err:
        convert([path])
    assert "\n" not in str(err.value)


def test_negative_spike_times_and_spikes_outside_obs_intervals_are_errors(tmp_path):
    for spikes, obs, message in (([-0.5, 1.0], None, r"unit 0 has a spike at -0.5 s, before the session start"),
                                 ([0.6, 3.2], [[0.0, 3.0]], r"unit 0 has a spike at 3.2 s, outside its obs_intervals")):
        nwb = NWBFile(session_description="x", identifier="x", session_start_time=datetime(2026, 1, 1,
                                                                                           tzinfo=timezone.utc))
        nwb.add_unit(spike_times=spikes, obs_intervals=obs)
        for name in ("a", "b", "c"):
            nwb.add_stimulus_template(TimeSeries(name=name, data=np.zeros(4800, dtype=np.float32), rate=48000.0,
                                                 unit="Pa"))
        nwb.add_trial_column(name="stimulus", description="the sound")
        for start, stop, name in GOOD_TRIALS[:3]:
            nwb.add_trial(start_time=start, stop_time=stop, stimulus=name)
        path = tmp_path / f"obs{len(message)}.nwb"
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
        with pytest.raises(DatasetError, match=message):
            convert([path])


def test_a_unit_outside_its_obs_intervals_is_nan_there(tmp_path):
    nwb = NWBFile(session_description="x", identifier="x", session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    nwb.add_unit(spike_times=[0.6, 1.6], obs_intervals=[[0.0, 2.2]])  # recorded for the first two presentations
    nwb.add_unit(spike_times=[0.61, 2.61, 3.61], obs_intervals=[[0.0, 10.0]])
    for name in ("a", "b", "c"):
        nwb.add_stimulus_template(TimeSeries(name=name, data=np.zeros(4800, dtype=np.float32), rate=48000.0, unit="Pa"))
    nwb.add_trial_column(name="stimulus", description="the sound")
    for start, stop, name in GOOD_TRIALS:
        nwb.add_trial(start_time=start, stop_time=stop, stimulus=name)
    path = tmp_path / "obs.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    a, b, c = convert([path]).stimuli
    assert a.responses.shape == (2, 2, 100)
    assert a.responses[0, 0, 20] == 1 and np.isnan(a.responses[0, 1]).all()  # the repeat at 3.5 s: not recorded
    assert not np.isnan(a.responses[1]).any() and a.responses[1, 1, 22] == 1
    assert np.isnan(c.responses[0]).all() and not np.isnan(b.responses[0]).any()


def test_files_pynwb_cannot_read_are_one_line_errors(tmp_path):
    text = tmp_path / "notes.nwb"
    text.write_text("not an HDF5 file")
    with pytest.raises(DatasetError, match=r"notes.nwb: pynwb cannot read it as an NWB file"):
        convert([text])
    import h5py

    plain = tmp_path / "plain.nwb"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DatasetError, match=r"plain.nwb: pynwb cannot read it as an NWB file"):
        convert([plain])
    with pytest.raises(DatasetError, match=r"missing.nwb does not exist"):
        ensure_nwb(str(tmp_path / "missing.nwb"), NWBDatasetConfig(), tmp_path)


def test_without_pynwb_dataset_nwb_says_what_to_install(monkeypatch, tmp_path, truth):
    import importlib.util

    written = write_nwb(tmp_path / "session.nwb", truth)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pynwb" else real(name, *a))
    with pytest.raises(ConfigError, match=r'dataset=nwb needs the pynwb package: pip install "strf-runner\[nwb\]"'):
        convert([written.path])


# ---------------------------------------------------------------------------------------------
# sounds: checked against the presentations, scaled like sound files, and followed by the cache


def noise(n: int, seed: int = 0, channels: int | None = None) -> np.ndarray:
    shape = (n,) if channels is None else (n, channels)
    return (0.25 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def test_the_cache_follows_every_sound_file_read_even_in_a_subfolder(tmp_path):
    (tmp_path / "sounds").mkdir()
    for i, name in enumerate("abc"):
        soundfile.write(tmp_path / "sounds" / f"{name}.wav", noise(24000, i), 48000, subtype="PCM_16")
    trials = [(start, stop, f"sounds/{name}.wav") for start, stop, name in GOOD_TRIALS]
    path = bare_nwb(tmp_path / "s.nwb", trials=trials, templates=())
    first = ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    assert ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache") == first and first.stat().st_mtime_ns == stamp
    soundfile.write(tmp_path / "sounds" / "c.wav", noise(24000, 7), 48000, subtype="PCM_16")
    second = ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache")
    assert second != first
    np.testing.assert_array_equal(read_dataset(second).stimuli[2].waveform,
                                  soundfile.read(tmp_path / "sounds" / "c.wav", dtype="float32")[0])
    sounds = json.loads(read_dataset(second).attrs["provenance"])["sounds"]
    assert sounds["sounds/c.wav"]["from"] == str(tmp_path / "sounds" / "c.wav")
    assert sounds["sounds/c.wav"]["sha256"] == file_sha256(tmp_path / "sounds" / "c.wav")


@pytest.mark.parametrize("sound, message", [
    (dict(data=np.zeros(0, dtype=np.float32)), r"/stimulus_templates/a: holds no samples \(data of shape \(0,\)\)"),
    (dict(data=noise(2, channels=24000)), r"/stimulus_templates/a: data of shape \(2, 24000\): NWB stores time first, "
                                          r"so that is 2 samples of 24000 channels; store the sound as \(samples, "
                                          r"channels\), e.g. data.T"),
    (dict(data=noise(24000), rate=48.0), r"/stimulus_templates/a: sampling rate 48 Hz is not a sound's \(1 kHz to "
                                         r"10 MHz; NWB rates are in Hz; 48 looks like kHz: write 48000\)"),
    (dict(data=noise(24000), rate=1e-3), r"/stimulus_templates/a: sampling rate 0.001 Hz is not a sound's"),
    (dict(data=noise(24000), rate=0.0), r"/stimulus_templates/a: sampling rate 0.0 Hz; a sound needs a finite rate"),
    (dict(data=noise(24000), rate=math.inf), r"/stimulus_templates/a: sampling rate inf Hz; a sound needs a finite"),
    (dict(data=np.full(24000, np.nan, dtype=np.float32)), r"/stimulus_templates/a: holds NaN or infinite samples"),
], ids=["empty", "stereo-as-2-samples", "rate-in-khz", "rate-1-mhz", "rate-0", "rate-inf", "nan-samples"])
def test_a_template_that_does_not_fit_its_presentations_is_one_line_naming_it(tmp_path, sound, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pynwb's own about a rate of 0
        path = bare_nwb(tmp_path / "bad.nwb", trials=GOOD_TRIALS, sounds={"a": sound})
        with pytest.raises(DatasetError, match=f"^{path}: {message}") as err:
            ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_a_sound_longer_than_its_presentations_is_cut_with_a_warning_and_refused_past_twice(tmp_path):
    path = bare_nwb(tmp_path / "long.nwb", trials=GOOD_TRIALS, sounds={"a": dict(data=noise(38400))})  # 0.8 s
    with pytest.warns(StrfRunnerWarning, match=r"nwb: 1 of 3 sounds last longer than their presentations and are cut "
                                               rf"at their end \(most: {path}: /stimulus_templates/a, 0.3 s cut\)"):
        ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache")
    path = bare_nwb(tmp_path / "longer.nwb", trials=GOOD_TRIALS, sounds={"a": dict(data=noise(57600))})  # 1.2 s
    with pytest.raises(DatasetError, match=rf"^{path}: /stimulus_templates/a: the sound of stimulus 'a' lasts 1.2 s "
                                           r"\(57600 samples at 48000 Hz\), more than 2 times its presentations "
                                           rf"\({path}: /intervals/trials row 0: 0.5 s\); check the sampling rate"):
        ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache")


def test_a_stereo_template_is_mixed_to_mono_with_a_warning(tmp_path):
    stereo = noise(24000, channels=2)
    path = bare_nwb(tmp_path / "s.nwb", trials=GOOD_TRIALS, sounds={"a": dict(data=stereo)})
    with pytest.warns(StrfRunnerWarning, match=r"nwb: 1 of 3 sounds have several channels, mixed to mono by their "
                                               rf"mean \(first: {path}: /stimulus_templates/a, 2 channels\)"):
        out = ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache")
    np.testing.assert_allclose(read_dataset(out).stimuli[0].waveform, stereo.astype(np.float64).mean(axis=1), atol=1e-7)


def test_duplicate_unit_ids_are_one_line_naming_the_units_table(tmp_path):
    path = bare_nwb(tmp_path / "dup.nwb", trials=GOOD_TRIALS, unit_ids=(3, 5, 3))
    with pytest.raises(DatasetError, match=rf"^{path}: /units has 2 units with the id 3; unit ids name the neurons"):
        ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache")


@pytest.mark.parametrize("dtype, subtype", [(np.int16, "PCM_16"), (np.int32, "PCM_32"), (np.uint8, "PCM_U8")])
def test_integer_pcm_templates_are_scaled_like_the_same_sound_in_a_wav_file(tmp_path, dtype, subtype):
    info = np.iinfo(dtype)
    pcm = np.random.default_rng(0).integers(info.min, info.max, 24000, endpoint=True).astype(dtype)
    centre, full = (128, 128) if dtype == np.uint8 else (0, -int(info.min))
    as_float = (pcm.astype(np.float64) - centre) / full
    soundfile.write(tmp_path / "a.wav", as_float, 48000, subtype=subtype)
    for name in "bc":
        soundfile.write(tmp_path / f"{name}.wav", np.zeros(24000), 48000, subtype=subtype)
    assert soundfile.info(tmp_path / "a.wav").subtype == subtype
    path = bare_nwb(tmp_path / "s.nwb", trials=GOOD_TRIALS, sounds={"a": dict(data=pcm)})
    template = convert([path], audio="template").stimuli[0].waveform
    in_wav = convert([path], audio="wav", audio_dir=str(tmp_path)).stimuli[0].waveform
    np.testing.assert_array_equal(template, in_wav)
    np.testing.assert_array_equal(template, as_float.astype(np.float32))
    # a series that says how to convert its integers to its unit is taken at its word
    path = bare_nwb(tmp_path / "v.nwb", trials=GOOD_TRIALS, sounds={"a": dict(data=pcm, conversion=0.5)})
    np.testing.assert_array_equal(convert([path]).stimuli[0].waveform, (pcm.astype(np.float64) * 0.5).astype(np.float32))


@pytest.mark.parametrize("limit, message", [
    ("512K", r"/stimulus_templates/a \(24000 samples x 1 channels\) would need 562 KiB of memory, more than the "
             r"limit of 512 KiB \(STRF_RUNNER_MEMORY_LIMIT\)"),
    ("32M", r"/intervals/trials row 0: stimulus 'a' \(20 s in 5 ms bins, 1 units x 1 repeats\) would need 114 MiB"),
], ids=["template-read", "stimulus-arrays"])
def test_arrays_the_file_sizes_are_refused_over_the_memory_limit_before_they_are_made(tmp_path, monkeypatch, limit,
                                                                                       message):
    monkeypatch.setenv("STRF_RUNNER_MEMORY_LIMIT", limit)
    trials = [(0.5, 20.5, "a"), (21.0, 21.5, "b"), (22.0, 22.5, "c")] if limit == "32M" else GOOD_TRIALS
    path = bare_nwb(tmp_path / "big.nwb", trials=trials)
    with pytest.raises(MemoryLimitError, match=f"^{path}: {message}"):
        ensure_nwb(str(path), NWBDatasetConfig(), tmp_path / "cache")


# ---------------------------------------------------------------------------------------------
# end to end


@pytest.mark.slow  # 10 s of training; the default suite is at its 10-minute budget
def test_a_fit_on_the_converted_recording_recovers_the_ground_truth_as_well_as_synth(tmp_path, truth):
    from strf_runner.data.nwb import NWBDatasetConfig
    from strf_runner.experiment import run_experiment
    from tests.helpers.runs import tiny_config

    written = write_nwb(tmp_path / "session.nwb", truth, layout="played")
    on_synth = run_experiment(tiny_config(tmp_path, max_epochs=30), tmp_path / "synth")
    cfg = tiny_config(tmp_path, max_epochs=30)
    cfg.dataset = NWBDatasetConfig(name="nwb", path=str(written.path), root=str(tmp_path / "cache"),
                                   **{f"{k}_stimuli": v for k, v in truth.splits.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StrfRunnerWarning)
        on_nwb = run_experiment(cfg, tmp_path / "nwb")
    synth_score, nwb_score = on_synth.summary.test_mean_cc_norm, on_nwb.summary.test_mean_cc_norm
    assert synth_score > 0.3 and abs(nwb_score - synth_score) < 0.02, (synth_score, nwb_score)
    np.testing.assert_allclose(on_nwb.neurons["cc_norm"], on_synth.neurons["cc_norm"], atol=0.05)  # neuron by neuron
    provenance = on_nwb.summary.dataset.provenance
    assert provenance["files"][0]["path"] == str(written.path) and provenance["files"][0]["units"] == 16
    assert on_nwb.summary.dataset.splits == {k: truth.splits[k] for k in on_nwb.summary.dataset.splits}


@pytest.mark.slow  # 15 s: two strf-run processes
def test_strf_run_dataset_nwb_from_the_command_line(tmp_path, truth):
    from tests.helpers.commands import strf_run

    written = write_nwb(tmp_path / "session.nwb", truth, layout="wav", extra_rows=2)
    done = strf_run(["dataset=nwb", f"dataset.path={written.path}", "dataset.units_where='quality==good'",
                     "trainer=smoke", "device=cpu", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path / "cache", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "strf-run: warning: nwb: 6 of 16 units left out by dataset.units_where" in done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"]["provenance"]["units_left_out"] == 6 and summary["test_n_neurons"] == 10
    bad = strf_run(["dataset=nwb", f"dataset.path={tmp_path / 'nope.nwb'}", "trainer=smoke", "device=cpu"],
                   tmp_path / "cache", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"strf-run: error: dataset.path: {tmp_path / 'nope.nwb'} does not exist"]


def test_two_played_series_covering_a_presentation_need_dataset_audio_series(tmp_path, truth):
    written = write_nwb(tmp_path / "session.nwb", truth, layout="played")
    with NWBHDF5IO(str(written.path), "a") as io:
        nwb = io.read()
        speaker = nwb.stimulus["speaker"]
        nwb.add_stimulus(TimeSeries(name="microphone", data=np.zeros(len(speaker.data), dtype=np.float32),
                                    rate=speaker.rate, starting_time=0.0, unit="Pa"))
        io.write(nwb)
    with pytest.raises(DatasetError, match=r"session.nwb: several played series under /stimulus cover the "
                                           r"presentation of 'syn\d\d' at [\d.]+ s \(\['microphone', 'speaker'\]\); "
                                           r"choose one with dataset.audio_series"):
        convert([written.path])
    chosen = convert([written.path], audio_series="speaker")
    np.testing.assert_array_equal(chosen.stimuli[0].waveform, truth.stimuli[0].waveform)
    with pytest.raises(DatasetError, match=r"no TimeSeries 'mic' under /stimulus \(dataset.audio_series\); "
                                           r"it has \['microphone', 'speaker'\]"):
        convert([written.path], audio_series="mic")
