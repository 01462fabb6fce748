"""Sound files as model input: read in blocks, mixed to mono, resampled, cut into whole time bins.

soundfile (libsndfile) reads WAV of every sample format, FLAC, OGG/Vorbis, MP3, AIFF and more, and
returns float samples scaled to [-1, 1) whatever the file's encoding. Resampling is
``scipy.signal.resample_poly`` (a polyphase Kaiser-windowed FIR, the one the NS1 loader uses) at the
exact rational ratio of the two rates.

Nothing holds the whole file: it is read in blocks, and each block is resampled together with a
margin of its neighbours' samples wider than the filter's reach, then cropped to its own output
samples. Those equal the whole-file ``resample_poly`` output (same taps, same inputs), so memory is
set by the block while the result is the one-shot one (``tests/predict``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.signal
import soundfile

from strf_runner.errors import AudioError

_READ_ERRORS = (RuntimeError, TypeError, ValueError, EOFError)  # soundfile's LibsndfileError is a RuntimeError


@dataclass(frozen=True)
class SoundInfo:
    """A readable sound file: its path, sample rate (Hz), channels and length in samples."""

    path: Path
    fs: float
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fs


def open_sound(path: str | Path) -> SoundInfo:
    """What ``path`` holds; AudioError naming the file if it is missing, a directory, unreadable or empty."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path} is a directory, not a sound file")
    if not path.is_file():
        raise AudioError(f"sound file {path} does not exist")
    try:
        info = soundfile.info(path)
    except _READ_ERRORS as err:
        raise AudioError(f"cannot read {path} as a sound file ({err})") from err
    if info.frames <= 0:
        raise AudioError(f"{path} holds no samples (an empty sound)")
    return SoundInfo(path, float(info.samplerate), int(info.channels), int(info.frames))


def mono_blocks(sound: SoundInfo, block: int) -> Iterator[np.ndarray]:
    """The file's samples, channels averaged, in blocks of ``block`` (the last one shorter), float64."""
    try:
        for data in soundfile.blocks(sound.path, blocksize=block, dtype="float64", always_2d=True):
            if not np.isfinite(data).all():
                raise AudioError(f"{sound.path} holds NaN or infinite samples")
            yield data.mean(axis=1)
    except _READ_ERRORS as err:
        raise AudioError(f"cannot read {sound.path} to its end ({err})") from err


def resample_ratio(fs: float, target_fs: float) -> Fraction:
    """up / down of the resampling from ``fs`` to ``target_fs`` Hz (exact for rates in whole Hz)."""
    return Fraction(target_fs / fs).limit_denominator(10_000)


def resampled_blocks(blocks: Iterator[np.ndarray], ratio: Fraction, n_in: int) -> Iterator[np.ndarray]:
    """``resample_poly`` of the concatenated ``blocks`` (every one but the last a multiple of
    ratio.denominator samples long, and at least ``resample_margin`` long), block by block; n_in: the
    total input length. The output has round(n_in * ratio) samples in all: the whole-file output
    cropped at the input's end."""
    up, down = ratio.numerator, ratio.denominator
    margin = resample_margin(ratio)
    past = np.zeros(0)
    n_total, emitted = round(n_in * ratio), 0
    current = next(blocks, None)
    while current is not None:
        following = next(blocks, None)
        if up == down:
            out = current
        else:
            ahead = following[:margin] if following is not None else np.zeros(0)
            y = scipy.signal.resample_poly(np.concatenate([past, current, ahead]), up, down)
            start = len(past) * up // down
            out = y[start : start + math.ceil(len(current) * up / down)]
        out = out[: n_total - emitted]
        emitted += len(out)
        yield out
        past = np.concatenate([past, current])[-margin:] if margin else past
        current = following


def resample_margin(ratio: Fraction) -> int:
    """Input samples of context on each side that make a block's resampled output exact: the FIR's
    half length (10 max(up, down) taps at the up-sampled rate) in input samples, rounded up to a
    whole number of ``down`` so that block starts stay on the output grid."""
    up, down = ratio.numerator, ratio.denominator
    reach = -(-10 * max(up, down) // up) + 1
    return -(-reach // down) * down


def grid_chunks(sound: SoundInfo, audio_fs: float, hop: int, frames: int) -> Iterator[np.ndarray]:
    """The sound at the model's rate in chunks of ``frames`` bins (T_k * hop,) float32; the last chunk
    is zero-padded to whole bins (a sound shorter than a bin still gives one). Bin t covers samples
    [t hop, (t + 1) hop) of the resampled sound."""
    ratio = resample_ratio(sound.fs, audio_fs)
    down = ratio.denominator
    block = max(resample_margin(ratio), -(-frames * hop * down // ratio.numerator))
    block = -(-block // down) * down
    size, pending, n_out = frames * hop, np.zeros(0), 0
    for out in resampled_blocks(mono_blocks(sound, block), ratio, sound.frames):
        pending = np.concatenate([pending, out])
        while len(pending) >= size:
            yield pending[:size].astype(np.float32)
            pending = pending[size:]
            n_out += size
    if len(pending) or n_out == 0:
        n_bins = max(1, -(-len(pending) // hop))
        yield np.pad(pending, (0, n_bins * hop - len(pending))).astype(np.float32)


def n_grid_bins(sound: SoundInfo, audio_fs: float, hop: int) -> int:
    """Bins ``grid_chunks`` yields in all."""
    return max(1, -(-round(sound.frames * resample_ratio(sound.fs, audio_fs)) // hop))
