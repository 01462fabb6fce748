"""Fetch one file over HTTP(S): streamed, resumable, checksummed, atomic, with a progress bar.

``fetch(url, dest, sha256)`` is the only entry point. The rules, in order:

1. **Already there.** If ``dest`` exists it is checked, not downloaded again: its SHA-256 must equal
   ``sha256`` (or, when ``sha256`` is None, the digest recorded in the sidecar ``<dest>.sha256``).
   A mismatch is an error: a file that fails its check is never silently reused or overwritten.
2. **Stream to a temp name.** Bytes go to ``<dest>.part``. If a ``.part`` is left over from an
   interrupted download, the request asks for the rest with ``Range: bytes=<size>-``; a server that
   answers 206 with the matching ``Content-Range`` is appended to, one that answers 200 (it ignores
   Range) is downloaded afresh, and 416 (nothing left to send, or a stale part) starts over.
   A network failure keeps the ``.part`` so that the next call resumes it.
3. **Verify, then rename.** The digest is computed while streaming. On a mismatch the ``.part`` is
   deleted and ``DatasetError`` names the file, the expected and the actual digest; otherwise the
   ``.part`` is renamed onto ``dest`` (one ``os.replace``, so ``dest`` is complete or absent).

**Trust on first use.** Some files have no digest known in advance (an archive re-packed by its host,
a file in a moving repository). For those, pass ``sha256=None``: the digest of the first complete
download (or of a ``dest`` found in place without a sidecar) is recorded in ``<dest>.sha256``, in
``sha256sum`` format, and every later check and re-download is verified against it. Delete both
files to accept a new version.

Every failure a user can cause is one ``DatasetError`` line; a network failure says what to fetch by
hand and where to put it. We use the standard library (``urllib``) rather than pooch because pooch
has no resume of partial downloads and no trust-on-first-use record, and draws its progress bar with
tqdm; what is left of it here would be a thin wrapper around the same ``urllib`` loop.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from strf_runner import __version__
from strf_runner.atomic import atomic_path
from strf_runner.data.schema import file_sha256
from strf_runner.errors import DatasetError

__all__ = ["fetch", "part_path", "sidecar_path"]

CHUNK_BYTES = 1 << 16
TIMEOUT_S = 60.0
USER_AGENT = f"strf-runner/{__version__} (python urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def part_path(dest: str | os.PathLike) -> Path:
    """The temp name a download streams to: ``<dest>.part``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def sidecar_path(dest: str | os.PathLike) -> Path:
    """The trust-on-first-use digest record of ``dest``: ``<dest>.sha256``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".sha256")


def fetch(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``dest`` unless it is already there and checks out; return ``dest``.

    sha256: the expected hex digest, or None to trust the first download and record its digest in
    ``<dest>.sha256`` (see the module docstring). progress: draw a rich progress bar on stderr.
    Raises DatasetError on a network failure (the ``.part`` is kept for resuming), a checksum
    mismatch (the ``.part`` is deleted), or a ``dest`` that fails its check.
    """
    dest = Path(dest)
    sidecar = sidecar_path(dest)
    pinned = sha256.strip().lower() if sha256 else None
    expected = pinned or _read_sidecar(sidecar)
    origin = "pinned in the code" if pinned else f"recorded in {sidecar}"
    if dest.exists():
        actual = file_sha256(dest)
        if expected is None:
            _write_sidecar(sidecar, dest.name, actual)
        elif actual != expected:
            raise DatasetError(
                f"{dest} exists but its sha256 is {actual}, expected {expected} ({origin}); "
                "delete it to download it again"
            )
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetError(f"cannot create folder {dest.parent} for {url} ({err.strerror or err})") from err
    part = part_path(dest)
    actual = _download(url, dest, part, progress, timeout)
    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)
        raise DatasetError(
            f"downloaded {url} but its sha256 is {actual}, expected {expected} ({origin}); "
            f"deleted {part.name}; {dest} was not written"
        )
    os.replace(part, dest)
    if expected is None:
        _write_sidecar(sidecar, dest.name, actual)
    return dest


def _download(url: str, dest: Path, part: Path, progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``part`` (resuming it when possible); return the sha256 of the whole part."""
    for _ in range(3):
        offset = part.stat().st_size if part.exists() else 0
        response = _open(url, dest, offset, timeout)
        if response is None:  # 416: the part does not fit the file on the server; start over
            part.unlink(missing_ok=True)
            continue
        with response:
            if offset and not _resumes(response, offset):
                if response.status == 206:  # a range we did not ask for: start over
                    part.unlink(missing_ok=True)
                    continue
                offset = 0  # 200: the server ignored Range and sends the whole file
            return _stream(response, url, dest, part, offset, progress)
    raise _network_error(url, dest, "the server would not resume or restart the download")


def _open(url: str, dest: Path, offset: int, timeout: float) -> http.client.HTTPResponse | None:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            return None
        raise _network_error(url, dest, f"HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        raise _network_error(url, dest, _reason(err)) from err


def _resumes(response: http.client.HTTPResponse, offset: int) -> bool:
    """Whether a response continues a part of ``offset`` bytes (206 with a matching Content-Range)."""
    if response.status != 206:
        return False
    match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
    return bool(match) and int(match.group(1)) == offset


def _stream(
    response: http.client.HTTPResponse, url: str, dest: Path, part: Path, offset: int, progress: bool
) -> str:
    digest = hashlib.sha256()
    if offset:
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length and length.isdigit() else None
    received = offset
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    try:
        out = open(part, "ab" if offset else "wb")
    except OSError as err:
        raise DatasetError(f"cannot write {part} ({err.strerror or err})") from err
    with out, bar:
        task = bar.add_task(f"{dest.name}", total=total, completed=offset)
        while True:
            try:
                block = response.read(CHUNK_BYTES)
            except (http.client.HTTPException, OSError, ValueError) as err:
                raise _network_error(url, dest, f"{_reason(err)} after {received} bytes; run again to resume") from err
            if not block:
                break
            try:
                out.write(block)
            except OSError as err:
                raise DatasetError(f"cannot write {part} ({err.strerror or err})") from err
            digest.update(block)
            received += len(block)
            bar.update(task, completed=received)
    if total is not None and received != total:
        raise _network_error(url, dest, f"connection closed after {received} of {total} bytes; run again to resume")
    return digest.hexdigest()


def _network_error(url: str, dest: Path, reason: str) -> DatasetError:
    return DatasetError(
        f"could not download {url} ({reason}); fetch it by hand and put it at {dest}, "
        "or set dataset.root to a folder holding it"
    )


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    text = " ".join(str(reason).split()) or type(err).__name__
    return f"{type(err).__name__}: {text}" if isinstance(err, (http.client.HTTPException, TimeoutError)) else text


def _read_sidecar(sidecar: Path) -> str | None:
    if not sidecar.exists():
        return None
    try:
        token = sidecar.read_text().split(maxsplit=1)[0].lower() if sidecar.stat().st_size else ""
    except OSError as err:
        raise DatasetError(f"cannot read {sidecar} ({err.strerror or err})") from err
    if not re.fullmatch(r"[0-9a-f]{64}", token):
        raise DatasetError(f"{sidecar} does not start with a sha256 hex digest; delete it to record a new one")
    return token


def _write_sidecar(sidecar: Path, name: str, digest: str) -> None:
    try:
        with atomic_path(sidecar) as tmp:
            tmp.write_text(f"{digest}  {name}\n")
    except OSError as err:
        raise DatasetError(f"cannot write {sidecar} ({err.strerror or err})") from err
