"""Downloads and archive extraction against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
import tarfile
import threading
import warnings
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures_audio import make_urbansound8k

import featurekit.datasets.registry as registry
from featurekit.datasets import (
    DatasetManifest,
    DatasetWarning,
    download_dataset,
    load_dataset,
    load_manifest,
    verify_dataset,
)
from featurekit.errors import DatasetError, DownloadError
from featurekit.io.download import download_file, extract_archive


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` ({url path: bytes}) with HTTP Range support and scripted faults."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []  # Range header of each request, in order
        self.drop_after: int | None = None  # close the first response after this many bytes
        self.ignore_range = False
        self.fail_next: list[int] = []  # HTTP status codes to answer the next requests with

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class RangeHandler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        body = self.server.files.get(self.path)
        requested = self.headers.get("Range")
        self.server.ranges.append(requested)
        if self.server.fail_next:
            self.send_error(self.server.fail_next.pop(0))
            return
        if body is None:
            self.send_error(404)
            return
        start = 0
        if requested and not self.server.ignore_range:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if self.server.drop_after is not None:
            payload, self.server.drop_after = payload[:self.server.drop_after], None
            self.wfile.write(payload)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[FileServer]:
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def payload(size: int = 300_000) -> bytes:
    return bytes((i * 7919) % 251 for i in range(size))


def digests(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_of_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for entry in sorted(directory.iterdir()):
            archive.add(entry, arcname=entry.name)
    return buffer.getvalue()


# --- download_file ---------------------------------------------------------------------------

def test_download_success_verifies_and_places_atomically(server: FileServer,
                                                         tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    dest = download_file(server.url("/a.bin"), tmp_path / "sub" / "a.bin", progress=False,
                         expected_size=len(data), **digests(data))
    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.bin"]
    # a complete, matching file is not fetched again
    requests = len(server.ranges)
    download_file(server.url("/a.bin"), dest, progress=False, **digests(data))
    assert len(server.ranges) == requests


def test_checksum_mismatch_deletes_the_file(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data[:-1] + b"\x00"  # corrupted on the server
    with pytest.raises(DownloadError, match=r"sha256 mismatch: expected [0-9a-f]{64}, got"):
        download_file(server.url("/a.bin"), tmp_path / "a.bin", progress=False,
                      sha256=digests(data)["sha256"])
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_is_reported(server: FileServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = payload(1000)
    with pytest.raises(DownloadError, match="size mismatch: expected 999 bytes, got 1000"):
        download_file(server.url("/a.bin"), tmp_path / "a.bin", progress=False,
                      expected_size=999)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_with_range(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    server.drop_after = 100_000
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="rerun to resume"):
        download_file(server.url("/a.bin"), dest, progress=False, retries=0, **digests(data))
    part = tmp_path / "a.bin.part"
    assert not dest.exists() and part.stat().st_size == 100_000
    download_file(server.url("/a.bin"), dest, progress=False, retries=0, **digests(data))
    assert server.ranges == [None, "bytes=100000-"]
    assert dest.read_bytes() == data and not part.exists()


def test_dropped_connection_is_resumed_within_one_call(server: FileServer,
                                                       tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    server.drop_after = 12_345
    dest = download_file(server.url("/a.bin"), tmp_path / "a.bin", progress=False,
                         **digests(data))
    assert dest.read_bytes() == data
    assert server.ranges == [None, "bytes=12345-"]


def test_server_ignoring_range_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    server.ignore_range = True
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes from another file")
    dest = download_file(server.url("/a.bin"), tmp_path / "a.bin", progress=False,
                         **digests(data))
    assert dest.read_bytes() == data
    assert server.ranges == ["bytes=29-"]


def test_unusable_partial_file_restarts(server: FileServer, tmp_path: Path) -> None:
    data = payload(1000)
    server.files["/a.bin"] = data
    (tmp_path / "a.bin.part").write_bytes(b"x" * 5000)  # longer than the remote file: 416
    dest = download_file(server.url("/a.bin"), tmp_path / "a.bin", progress=False,
                         **digests(data))
    assert dest.read_bytes() == data
    assert server.ranges == ["bytes=5000-", None]


def test_http_errors_and_bad_urls(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("/missing"), tmp_path / "m", progress=False)
    with pytest.raises(DownloadError, match="only http:// and https://"):
        download_file("ftp://example.org/x", tmp_path / "x", progress=False)
    assert list(tmp_path.iterdir()) == []


# --- extract_archive -------------------------------------------------------------------------

def test_extract_tar_and_zip(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_bytes({"top/x.txt": b"x", "top/sub/y.txt": b"y"}))
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "sub" / "y.txt").read_bytes() == b"y"
    zipped = tmp_path / "b.zip"
    with zipfile.ZipFile(zipped, "w") as handle:
        handle.writestr("ESC-50-master/meta/esc50.csv", "filename\n")
    extract_archive(zipped, tmp_path / "out")
    assert (tmp_path / "out" / "ESC-50-master" / "meta" / "esc50.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "b.zip", "out"]


def test_extract_refuses_to_overwrite(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_bytes({"top/x.txt": b"new"}))
    (tmp_path / "out" / "top").mkdir(parents=True)
    (tmp_path / "out" / "top" / "x.txt").write_bytes(b"old")
    with pytest.raises(DownloadError, match="top already exist"):
        extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "x.txt").read_bytes() == b"old"


def _link_tar(path: Path, name: str, target: str, kind: bytes) -> None:
    with tarfile.open(path, "w") as archive:
        good = tarfile.TarInfo("top/good.txt")
        good.size = 1
        archive.addfile(good, io.BytesIO(b"g"))
        link = tarfile.TarInfo(name)
        link.type, link.linkname = kind, target
        archive.addfile(link)


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(tar_bytes({"top/ok": b"1", "../evil.txt": b"x"})), r"'\.\.'"),
    (lambda p: p.write_bytes(tar_bytes({"/tmp/evil.txt": b"x"})), "absolute path"),
    (lambda p: _link_tar(p, "top/link", "../../outside", tarfile.SYMTYPE), "outside"),
    (lambda p: _link_tar(p, "top/link", "/etc/passwd", tarfile.SYMTYPE), "absolute"),
    (lambda p: _link_tar(p, "top/hard", "../secret", tarfile.LNKTYPE), "outside"),
    (lambda p: _link_tar(p, "top/dev", "", tarfile.CHRTYPE), "device"),
])
def test_unsafe_tar_is_rejected_and_nothing_extracted(tmp_path: Path, make, message) -> None:
    archive = tmp_path / "bad.tar"
    make(archive)
    with pytest.raises(DownloadError, match=f"unsafe archive member .*{message}"):
        extract_archive(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar", "out"]


def test_symlink_inside_the_archive_is_allowed(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    _link_tar(archive, "top/alias.txt", "good.txt", tarfile.SYMTYPE)
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "alias.txt").read_bytes() == b"g"


def test_unsafe_zip_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("ok.txt", "1")
        handle.writestr("a/../../evil.txt", "x")
    with pytest.raises(DownloadError, match=r"'\.\.'"):
        extract_archive(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "x.tar.gz").write_bytes(b"not an archive at all")
    with pytest.raises(DownloadError, match="not a tar or zip archive"):
        extract_archive(tmp_path / "x.tar.gz", tmp_path / "out")


# --- download_dataset / verify_dataset -------------------------------------------------------

@pytest.fixture
def served_us8k(server: FileServer, tmp_path: Path) -> tuple[str, bytes]:
    """A mini UrbanSound8K tarball on the local server: (url, archive bytes)."""
    source = make_urbansound8k(tmp_path / "source", clips_per_fold=4)
    data = tar_of_directory(source)
    server.files["/UrbanSound8K.tar.gz"] = data
    return server.url("/UrbanSound8K.tar.gz"), data


@pytest.fixture
def mini_manifest(served_us8k) -> DatasetManifest:
    """The UrbanSound8K manifest rewritten for the served mini archive (folds 1-3, 4 clips)."""
    url, data = served_us8k
    official = load_manifest("urbansound8k")
    return dataclasses.replace(
        official, folds=(1, 2, 3), expected_clips=12, fold_counts={1: 4, 2: 4, 3: 4},
        archive=dataclasses.replace(official.archive, url=url, size=len(data),
                                    md5=hashlib.md5(data).hexdigest()))


def test_download_dataset_checksum_mismatch_extracts_nothing(served_us8k, tmp_path: Path) -> None:
    url, _ = served_us8k  # not the official archive: md5 and size differ from the manifest
    target = tmp_path / "data"
    with pytest.raises(DownloadError, match="mismatch"):
        download_dataset("urbansound8k", target, url=url, progress=False)
    assert list(target.iterdir()) == []


def test_download_dataset_end_to_end(mini_manifest, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "data"
    with monkeypatch.context() as mini:
        mini.setattr(registry, "load_manifest", lambda name: mini_manifest)
        root = download_dataset("urbansound8k", target, progress=False)
        assert root == target / "UrbanSound8K"
        assert sorted(p.name for p in target.iterdir()) == ["UrbanSound8K",
                                                            "UrbanSound8K.tar.gz"]
        report = verify_dataset("urbansound8k", target)
        assert report.ok, str(report)
        assert "checksum matches" in str(report)
    with pytest.warns(DatasetWarning, match="12 of 8732 clips"):  # the real manifest
        dataset = load_dataset("urbansound8k", target)
    assert len(dataset.clips) == 12
    monkeypatch.setattr(registry, "load_manifest", lambda name: mini_manifest)
    # a second call finds the copy and downloads nothing
    assert download_dataset("urbansound8k", target, progress=False) == root
    # verification notices a damaged archive and missing audio
    (target / "UrbanSound8K.tar.gz").write_bytes(b"damaged")
    os.remove(dataset.clips["path"].iloc[0])
    report = verify_dataset("urbansound8k", target)
    assert not report.ok
    assert any(p.startswith("archive:") and "size mismatch" in p for p in report.problems)
    assert any(p.startswith("audio files: 11 of 12") for p in report.problems)
    with pytest.raises(DatasetError, match="does not match the manifest"):
        download_dataset("urbansound8k", target, progress=False)


def test_load_dataset_downloads_when_asked(mini_manifest, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "load_manifest", lambda name: mini_manifest)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)  # complete for this manifest
        dataset = load_dataset("urbansound8k", tmp_path / "new", download=True)
    assert len(dataset.clips) == 12 and dataset.folds == [1, 2, 3]


def test_only_official_releases_are_verified_or_downloaded(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'csv' datasets are local; only esc10, esc50, "
                                           "urbansound8k, fsd50k can be verified"):
        verify_dataset("csv", tmp_path)
    with pytest.raises(DatasetError, match=r"'folder' datasets are local; .* can be downloaded"):
        download_dataset("folder", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'nope'; known datasets: esc10, "
                                           "esc50, urbansound8k, fsd50k, folder, csv"):
        download_dataset("nope", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_verify_reports_counts_against_the_manifest(tmp_path: Path) -> None:
    root = make_urbansound8k(tmp_path, folds=(1, 2), clips_per_fold=3)
    report = verify_dataset("urbansound8k", root)
    assert not report.ok
    text = str(report)
    assert "clips listed: 6 (expected 8732)" in text
    assert "fold 1: 3 (expected 873)" in text and "fold 10: 0 (expected 837)" in text
    assert "audio files: 6 of 6 listed clips found" in text
    assert "archive: UrbanSound8K.tar.gz not present" in text


def test_server_errors_are_retried_and_client_errors_are_not(server: FileServer, tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setattr("featurekit.io.download.RETRY_DELAY_S", 0.01)
    data = payload(10_000)
    server.files["/a.bin"] = data
    server.fail_next = [503, 500]
    dest = download_file(server.url("/a.bin"), tmp_path / "a.bin", progress=False,
                         **digests(data))
    assert dest.read_bytes() == data and len(server.ranges) == 3
    server.fail_next = [503, 503, 503]
    with pytest.raises(DownloadError, match=r"HTTP 503 .*after 2 attempts"):
        download_file(server.url("/a.bin"), tmp_path / "b.bin", progress=False, retries=1)
    server.fail_next, server.ranges = [403], []
    with pytest.raises(DownloadError, match="HTTP 403"):
        download_file(server.url("/a.bin"), tmp_path / "c.bin", progress=False)
    assert len(server.ranges) == 1


def test_unreachable_host_is_retried_then_reported(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("featurekit.io.download.RETRY_DELAY_S", 0.01)
    with socket.socket() as probe:  # a port on 127.0.0.1 that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match=r"cannot connect.*after 3 attempts"):
        download_file(f"http://127.0.0.1:{port}/x", tmp_path / "x", progress=False, retries=2)
