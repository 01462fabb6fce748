"""download.fetch against a local HTTP server on 127.0.0.1 (never the internet; ``server`` in conftest)."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from strf_runner.data.download import fetch, part_path, sidecar_path
from strf_runner.errors import DatasetError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 1000  # 256 kB, several read chunks


def test_fetch_writes_verified_file_and_leaves_no_part(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "a.bin"
    assert fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not part_path(dest).exists() and not sidecar_path(dest).exists()  # pinned digest: no sidecar
    assert server.requests == [("/a.bin", None)]


def test_fetch_with_progress_bar_draws_to_stderr(server, tmp_path: Path, capsys):
    server.files["/a.bin"] = PAYLOAD
    fetch(server.url("a.bin"), tmp_path / "a.bin", _sha(PAYLOAD), progress=True)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert "a.bin" in capsys.readouterr().err


def test_fetch_is_idempotent_and_does_not_touch_the_network(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)
    fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)
    fetch("http://127.0.0.1:9/unreachable", dest, _sha(PAYLOAD), progress=False)  # present: no request at all
    assert len(server.requests) == 1


def test_existing_file_with_wrong_hash_is_an_error_not_reused(server, tmp_path: Path):
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"something else")
    with pytest.raises(DatasetError, match=r"a\.bin exists but its sha256 is [0-9a-f]{64}, expected .*delete it"):
        fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == b"something else" and server.requests == []


def test_checksum_mismatch_deletes_part_and_names_both_digests(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    wrong = "0" * 64
    with pytest.raises(DatasetError) as info:
        fetch(server.url("a.bin"), dest, wrong, progress=False)
    msg = str(info.value)
    assert wrong in msg and _sha(PAYLOAD) in msg and "a.bin" in msg and "\n" not in msg
    assert not dest.exists() and not part_path(dest).exists()


def test_interrupted_download_keeps_part_and_resumes_with_range(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    server.cut_after = 100_000
    dest = tmp_path / "a.bin"
    with pytest.raises(DatasetError, match=r"could not download .*100000 of 256000 bytes.*resume"):
        fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)
    assert part_path(dest).stat().st_size == 100_000 and not dest.exists()
    fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and not part_path(dest).exists()
    assert server.requests[-1] == ("/a.bin", "bytes=100000-")


def test_server_that_ignores_range_gives_a_fresh_download(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    server.ignore_range = True
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"stale bytes that must not survive")
    fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/a.bin", "bytes=33-")]


def test_part_longer_than_the_file_is_restarted_after_416(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"x" * (len(PAYLOAD) + 10))
    fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [f"bytes={len(PAYLOAD) + 10}-", None]


def test_resumed_part_with_wrong_bytes_fails_the_checksum(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"\xff" * 1000)  # not the file's first 1000 bytes
    with pytest.raises(DatasetError, match="expected"):
        fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)
    assert not part_path(dest).exists() and not dest.exists()
    fetch(server.url("a.bin"), dest, _sha(PAYLOAD), progress=False)  # and the next try starts clean
    assert dest.read_bytes() == PAYLOAD


def test_trust_on_first_use_records_then_checks_the_digest(server, tmp_path: Path):
    server.files["/z.zip"] = PAYLOAD
    dest = tmp_path / "z.zip"
    fetch(server.url("z.zip"), dest, None, progress=False)
    side = sidecar_path(dest)
    assert side.read_text() == f"{_sha(PAYLOAD)}  z.zip\n"
    fetch(server.url("z.zip"), dest, None, progress=False)  # verified against the record: fine
    dest.write_bytes(b"tampered")
    with pytest.raises(DatasetError, match=r"recorded in .*z\.zip\.sha256"):
        fetch(server.url("z.zip"), dest, None, progress=False)
    dest.unlink()  # a re-download must match the first one
    server.files["/z.zip"] = PAYLOAD[::-1]
    with pytest.raises(DatasetError, match=_sha(PAYLOAD)):
        fetch(server.url("z.zip"), dest, None, progress=False)
    assert not dest.exists()


def test_file_placed_by_hand_is_recorded_on_first_sight(server, tmp_path: Path):
    dest = tmp_path / "z.zip"
    dest.write_bytes(b"hand-fetched")
    fetch(server.url("z.zip"), dest, None, progress=False)
    assert sidecar_path(dest).read_text().split()[0] == _sha(b"hand-fetched")
    assert server.requests == []


def test_malformed_sidecar_is_an_error(server, tmp_path: Path):
    dest = tmp_path / "z.zip"
    sidecar_path(dest).write_text("not a digest\n")
    with pytest.raises(DatasetError, match=r"z\.zip\.sha256 does not start with a sha256"):
        fetch(server.url("z.zip"), dest, None, progress=False)


def test_http_error_says_what_to_fetch_and_where(server, tmp_path: Path):
    dest = tmp_path / "missing.bin"
    url = server.url("missing.bin")
    with pytest.raises(DatasetError) as info:
        fetch(url, dest, None, progress=False)
    msg = str(info.value)
    assert msg == (
        f"could not download {url} (HTTP 404 Not Found); fetch it by hand and put it at {dest}, "
        "or set dataset.root to a folder holding it"
    )


def test_unreachable_host_is_a_one_line_error(tmp_path: Path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pattern = r"could not download http://127\.0\.0\.1:\d+/x \(.+\); fetch it by hand"
    with pytest.raises(DatasetError, match=pattern) as info:
        fetch(f"http://127.0.0.1:{port}/x", tmp_path / "x", None, progress=False, timeout=5)
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()


def test_download_without_content_length(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    server.send_length = False  # HTTP/1.0: the body ends when the connection closes
    fetch(server.url("a.bin"), tmp_path / "a.bin", _sha(PAYLOAD), progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_unwritable_destination_is_a_dataset_error(server, tmp_path: Path):
    server.files["/a.bin"] = PAYLOAD
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(DatasetError, match="cannot create folder"):
        fetch(server.url("a.bin"), blocker / "a.bin", None, progress=False)
