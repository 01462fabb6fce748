"""Which data a run trained on: the dataset file's content digest, and whether a recorded run matches it.

A run records the ``DataIdentity`` of its dataset file (in ``data.json`` when it starts and in its
summary). Sweep reuse, sweep resume, ``resume=true`` and strf-report compare it, so a file edited in
place (a user's HDF5, an NWB session converted again) never passes for the data an old run saw.

The identity is ``schema.content_sha256`` of the whole file (every view, every neuron): a digest of the
data, not of the HDF5 bytes, so it is the same for the same data written by any h5py version. The file's
byte SHA-256 is kept beside it; a run recorded before content digests existed matches on that alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strf_runner.data.schema import DatasetContent, content_sha256, file_sha256, read_dataset


@dataclass(frozen=True)
class DataIdentity:
    """path: the dataset file; file_sha256: its bytes; content_sha256: its data (``content_sha256``)."""

    path: Path
    file_sha256: str
    content_sha256: str

    @property
    def short(self) -> str:
        """The first 8 hex digits of the content digest: how reports label data."""
        return self.content_sha256[:8]

    def record(self) -> dict[str, str]:
        """What a run writes down (data.json, summary.json's "dataset")."""
        return {"path": str(self.path.resolve()), "sha256": self.file_sha256, "content_sha256": self.content_sha256}

    def matches(self, recorded: dict[str, Any] | None) -> bool:
        """Whether a run's record (``record()`` as written, or an older summary's "dataset") names these
        data: equal content digests, or, for a record without one, equal file bytes. No record: False."""
        if not isinstance(recorded, dict):
            return False
        if recorded.get("content_sha256"):
            return recorded["content_sha256"] == self.content_sha256
        return bool(recorded.get("sha256")) and recorded["sha256"] == self.file_sha256


def recorded_digest(recorded: dict[str, Any] | None) -> str | None:
    """The data a run's record names, as a report labels it: its content digest (8 hex digits), or
    ``file:`` and 8 hex digits of the file's bytes for a record made before content digests; None without."""
    if not isinstance(recorded, dict):
        return None
    if recorded.get("content_sha256"):
        return str(recorded["content_sha256"])[:8]
    if recorded.get("sha256"):
        return f"file:{str(recorded['sha256'])[:8]}"
    return None


_KNOWN: dict[tuple, DataIdentity] = {}


def _stat_key(path: Path) -> tuple:
    """What changes whenever the file does (the inode's change time cannot be set back by a user)."""
    st = os.stat(path)
    return str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def data_identity(path: str | os.PathLike, content: DatasetContent | None = None) -> DataIdentity:
    """The identity of the dataset file at ``path``, computed once per process while the file is
    unchanged. ``content``: the file's whole content (every view) if already read."""
    path = Path(path)
    key = _stat_key(path)
    if key not in _KNOWN:
        full = content if content is not None else read_dataset(path)
        _KNOWN[key] = DataIdentity(path, file_sha256(path), content_sha256(full))
    return _KNOWN[key]
