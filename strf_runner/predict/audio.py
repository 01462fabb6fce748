"""Sound files as model input: read (any format libsndfile reads), mix to mono, resample, grid-lock.

soundfile (libsndfile) reads WAV of every sample format, FLAC, OGG/Vorbis, MP3, AIFF and more, and
returns float samples scaled to [-1, 1) whatever the file's encoding. Resampling uses
``scipy.signal.resample_poly``, the polyphase Kaiser-windowed FIR the NS1 loader already uses, at
the exact rational ratio of the two rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

from strf_runner.errors import AudioError


@dataclass
class Sound:
    """A mono sound. samples: (T,) float64; fs: its sample rate in Hz; channels: in the file."""

    path: Path
    samples: np.ndarray
    fs: float
    channels: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.fs


def read_sound(path: str | Path) -> Sound:
    """Read a sound file and average its channels to mono; AudioError naming the file if it is
    missing, unreadable, empty or holds NaN / inf samples."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"sound file {path} does not exist")
    try:
        data, fs = soundfile.read(path, dtype="float64", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"cannot read {path} as a sound file ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path} holds no samples (an empty sound)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path} holds NaN or infinite samples")
    return Sound(path, data.mean(axis=1), float(fs), data.shape[1])


def resample(samples: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """(T,) at ``fs`` -> (round(T * target_fs / fs),) at ``target_fs``, band-limited (polyphase FIR)."""
    ratio = Fraction(target_fs / fs).limit_denominator(10_000)
    if ratio == 1:
        return np.asarray(samples, dtype=np.float64)
    out = scipy.signal.resample_poly(samples, ratio.numerator, ratio.denominator)
    return out[: round(len(samples) * target_fs / fs)]


def on_model_grid(sound: Sound, audio_fs: float, hop: int) -> np.ndarray:
    """The sound at the model's rate, zero-padded at the end to whole time bins: (T * hop,) float32.

    A last partial bin is completed with silence, so a sound shorter than one bin still gives one
    bin of prediction; bin t covers samples [t hop, (t + 1) hop) of the resampled sound.
    """
    x = resample(sound.samples, sound.fs, audio_fs)
    n_bins = max(1, -(-len(x) // hop))
    return np.pad(x, (0, n_bins * hop - len(x))).astype(np.float32)
