"""``gzslbench data download`` / ``data check`` against a loopback HTTP server serving archives built here."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from gzslbench.cli import cli
from gzslbench.core.errors import DataError
from gzslbench.data import download as dl
from gzslbench.data.download import unpack
from gzslbench.execution.resolve import load_dataset


@dataclass
class Served:
    """What the test server answers per path, and what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_once: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before hanging up, first GET only
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


def make_handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append((self.path, self.headers.get("Range")))
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start, status = 0, 200
            asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if asked and served.honour_range:
                start = int(asked.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            cut = served.cut_once.pop(self.path, None)
            self.wfile.write(body[start:] if cut is None else body[start : start + cut])
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[Served, str]]:
    """A ThreadingHTTPServer on 127.0.0.1 (free port) and its base URL."""
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GZSLBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GZSLBENCH_DATA", raising=False)
    monkeypatch.delenv("GZSLBENCH_XLSA17_URL", raising=False)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def error_line(result) -> str:
    """The one ``error:`` line a failed command printed, last on stderr, after any progress lines."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert result.exit_code == 2 and len(errors) == 1 and result.stderr.endswith(errors[0] + "\n"), result.output
    return errors[0]


def table_rows(output: str) -> dict[str, list[str]]:
    """``data check``'s table (after the data-root line and the header) as dataset -> cells."""
    lines = output.splitlines()[3:]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("|")[1:-1]] for line in lines)}


def mat_bytes(content: dict) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, content)
    return buffer.getvalue()


def xlsa17_tree(folder: str = "CUB") -> dict[str, bytes]:
    """The files of a tiny valid release: 6 classes (4 seen, 2 unseen), 36 instances, 4-d features."""
    labels = np.repeat(np.arange(1, 7), 6)
    idx = np.arange(1, len(labels) + 1)
    seen = labels <= 4
    test_seen = idx[seen][::3]
    rng = np.random.default_rng(0)
    splits = {
        "att": np.abs(rng.normal(size=(5, 6))),
        "trainval_loc": np.setdiff1d(idx[seen], test_seen).reshape(-1, 1).astype(float),
        "test_seen_loc": test_seen.reshape(-1, 1).astype(float),
        "test_unseen_loc": idx[~seen].reshape(-1, 1).astype(float),
    }
    features = {"features": rng.random((4, len(labels))), "labels": labels.reshape(-1, 1).astype(float)}
    base = f"xlsa17/data/{folder}"
    return {f"{base}/res101.mat": mat_bytes(features), f"{base}/att_splits.mat": mat_bytes(splits)}


def zip_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, body in files.items():
            zipped.writestr(zipfile.ZipInfo(name), body)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zipped.writestr(info, target)
    return buffer.getvalue()


def tar_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tarred:
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tarred.addfile(info)
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tarred.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def leftovers(target: Path) -> list[str]:
    """Everything in the target folder (parts, archives, staging folders, unpacked trees)."""
    return sorted(p.name for p in target.iterdir()) if target.exists() else []


@pytest.mark.parametrize("pack", [zip_of, tar_of], ids=["zip", "tar.gz"])
def test_good_archive_is_verified_unpacked_and_checked_valid(server, tmp_path, pack) -> None:
    served, base = server
    tree = xlsa17_tree()  # once: a .mat header holds its creation time
    body = pack(tree)
    served.files["/xlsa17.zip"] = body
    target = tmp_path / "data"
    result = invoke(
        "data", "download", "xlsa17", "--to", str(target), "--url", f"{base}/xlsa17.zip", "--sha256", sha(body)
    )
    assert result.exit_code == 0, result.output
    assert f"sha256 {sha(body)} verified" in result.stderr
    assert leftovers(target) == ["xlsa17"]  # no .part, no archive, no staging folder
    assert (target / "xlsa17" / "data" / "CUB" / "res101.mat").read_bytes() == tree["xlsa17/data/CUB/res101.mat"]

    check = invoke("data", "check", "--data-dir", str(target))
    assert check.exit_code == 0, check.output
    rows = table_rows(check.stdout)
    fingerprint = load_dataset("cub", str(target)).fingerprint
    assert rows["cub"][:4] == ["valid", "36", "6 (4/2)", fingerprint]
    assert {name: row[0] for name, row in rows.items() if name != "cub"} == dict.fromkeys(
        ["apy", "awa1", "awa2", "flo", "sun"], "absent"
    )


def test_url_from_environment_and_hash_stored_in_the_package(server, tmp_path, monkeypatch) -> None:
    """With the hash in ARCHIVES no --sha256 is needed; the env var replaces the published URL."""
    served, base = server
    body = zip_of(xlsa17_tree())
    served.files["/mirror/xlsa17.zip"] = body
    monkeypatch.setenv("GZSLBENCH_XLSA17_URL", f"{base}/mirror/xlsa17.zip")
    monkeypatch.setitem(dl.ARCHIVES, "xlsa17", replace(dl.ARCHIVES["xlsa17"], sha256=sha(body)))
    monkeypatch.setenv("GZSLBENCH_DATA", str(tmp_path / "root"))  # the default target is the loaders' data root
    result = invoke("data", "download", "xlsa17")
    assert result.exit_code == 0, result.output
    assert served.requests == [("/mirror/xlsa17.zip", None)]
    assert invoke("data", "check").exit_code == 0
    assert load_dataset("cub").source == str(tmp_path / "root" / "xlsa17" / "data" / "CUB")


def test_unknown_hash_is_printed_and_nothing_unpacked_until_the_user_vouches(server, tmp_path) -> None:
    served, base = server
    body = zip_of(xlsa17_tree())
    served.files["/xlsa17.zip"] = body
    target, url = tmp_path / "data", f"{base}/xlsa17.zip"
    assert dl.ARCHIVES["xlsa17"].sha256 is None

    refused = error_line(invoke("data", "download", "xlsa17", "--to", str(target), "--url", url))
    assert f"--sha256 {sha(body)}" in refused and "nothing unpacked" in refused
    assert leftovers(target) == ["xlsa17.zip.part"]

    accepted = invoke("data", "download", "xlsa17", "--to", str(target), "--url", url, "--sha256", sha(body))
    assert accepted.exit_code == 0, accepted.output
    assert leftovers(target) == ["xlsa17"]
    assert served.requests[1] == ("/xlsa17.zip", f"bytes={len(body)}-")  # the complete part is not fetched again

    other = tmp_path / "other"
    unverified = invoke("data", "download", "xlsa17", "--to", str(other), "--url", url, "--accept-unverified")
    assert unverified.exit_code == 0 and "NOT verified" in unverified.stderr
    assert leftovers(other) == ["xlsa17"]


def test_corrupted_archive_fails_the_hash_and_is_deleted(server, tmp_path, monkeypatch) -> None:
    served, base = server
    good = zip_of(xlsa17_tree())
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    served.files["/xlsa17.zip"] = bytes(bad)
    target = tmp_path / "data"
    monkeypatch.setitem(dl.ARCHIVES, "xlsa17", replace(dl.ARCHIVES["xlsa17"], sha256=sha(good)))
    for extra in ([], ["--accept-unverified"]):  # consent to a missing hash does not override a known one
        result = invoke("data", "download", "xlsa17", "--to", str(target), "--url", f"{base}/xlsa17.zip", *extra)
        assert f"SHA-256 mismatch (expected {sha(good)}, got {sha(bytes(bad))})" in error_line(result)
        assert leftovers(target) == []


def test_broken_transfer_is_detected_and_resumed_with_range(server, tmp_path) -> None:
    served, base = server
    body = zip_of(xlsa17_tree())
    half = len(body) // 2
    served.files["/xlsa17.zip"] = body
    served.cut_once["/xlsa17.zip"] = half
    target, url = tmp_path / "data", f"{base}/xlsa17.zip"
    args = ("data", "download", "xlsa17", "--to", str(target), "--url", url, "--sha256", sha(body))

    first = error_line(invoke(*args))
    assert f"incomplete: {half} of {len(body)} bytes; run the same command again to resume" in first
    assert leftovers(target) == ["xlsa17.zip.part"] and (target / "xlsa17.zip.part").stat().st_size == half

    second = invoke(*args)
    assert second.exit_code == 0, second.output
    assert served.requests == [("/xlsa17.zip", None), ("/xlsa17.zip", f"bytes={half}-")]
    assert f"resuming {url} at byte {half}" in second.stderr
    assert leftovers(target) == ["xlsa17"]


def test_server_ignoring_range_restarts_the_file(server, tmp_path) -> None:
    """A 200 answer to a Range request carries the whole file: the part is rewritten, not appended to."""
    served, base = server
    body = zip_of(xlsa17_tree())
    served.files["/xlsa17.zip"] = body
    served.cut_once["/xlsa17.zip"] = 100
    served.honour_range = False
    target = tmp_path / "data"
    args = ("data", "download", "xlsa17", "--to", str(target), "--url", f"{base}/xlsa17.zip", "--sha256", sha(body))
    assert "incomplete: 100 of" in error_line(invoke(*args))
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert served.requests[1] == ("/xlsa17.zip", "bytes=100-") and "resuming" not in result.stderr
    assert leftovers(target) == ["xlsa17"]


def test_truncated_archive_is_refused_even_when_accepted_unverified(server, tmp_path) -> None:
    served, base = server
    body = zip_of(xlsa17_tree())
    served.files["/xlsa17.zip"] = body[: len(body) * 2 // 3]
    target = tmp_path / "data"
    result = invoke(
        "data", "download", "xlsa17", "--to", str(target), "--url", f"{base}/xlsa17.zip", "--accept-unverified"
    )
    assert "not a zip or tar archive (truncated or corrupt?)" in error_line(result)
    assert leftovers(target) == []


EVIL = b"should never be written"


def malicious_archives(outside: Path) -> dict[str, bytes]:
    good = xlsa17_tree()
    return {
        "zip-dotdot": zip_of({**good, "xlsa17/../../evil.txt": EVIL}),
        "zip-absolute": zip_of({**good, str(outside / "evil.txt"): EVIL}),
        "zip-symlink": zip_of(good, links={"xlsa17/link": str(outside)}),
        "tar-dotdot": tar_of({**good, "../evil.txt": EVIL}),
        "tar-symlink-out": tar_of({**good, "xlsa17/link/evil.txt": EVIL}, links={"xlsa17/link": "../../outside"}),
        "tar-absolute-link": tar_of(good, links={"xlsa17/link": str(outside / "evil.txt")}),
    }


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("zip-dotdot", "would land outside the target folder"),
        ("zip-absolute", "would land outside the target folder"),
        ("zip-symlink", "is a symlink"),
        ("tar-dotdot", "would land outside the target folder"),
        ("tar-symlink-out", "unsafe member refused"),
        ("tar-absolute-link", "unsafe member refused"),
    ],
)
def test_malicious_archive_is_refused_and_writes_nothing(server, tmp_path, kind, reason) -> None:
    served, base = server
    outside = tmp_path / "outside"
    outside.mkdir()
    body = malicious_archives(outside)[kind]
    served.files["/xlsa17.zip"] = body
    target = tmp_path / "a" / "b"
    # even a hash the user vouches for does not make an unsafe archive acceptable
    result = invoke(
        "data", "download", "xlsa17", "--to", str(target), "--url", f"{base}/xlsa17.zip", "--sha256", sha(body)
    )
    message = error_line(result)
    assert reason in message and "nothing was unpacked" in message
    assert leftovers(target) == []
    assert leftovers(outside) == []
    assert sorted(p.name for p in tmp_path.rglob("evil*")) == []


def test_existing_copy_is_kept_unless_forced(server, tmp_path) -> None:
    served, base = server
    body = zip_of(xlsa17_tree())
    served.files["/xlsa17.zip"] = body
    target = tmp_path / "data"
    args = ("data", "download", "xlsa17", "--to", str(target), "--url", f"{base}/xlsa17.zip", "--sha256", sha(body))
    assert invoke(*args).exit_code == 0
    marker = target / "xlsa17" / "mine.txt"
    marker.write_text("user file")

    again = error_line(invoke(*args))
    assert "already exists" in again and "--force" in again
    assert len(served.requests) == 1 and marker.exists()  # refused before fetching anything

    forced = invoke(*args, "--force")
    assert forced.exit_code == 0, forced.output
    assert not marker.exists() and (target / "xlsa17" / "data" / "CUB" / "att_splits.mat").is_file()
    assert leftovers(target) == ["xlsa17"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("{base}/missing.zip", "HTTP 404"),
        ("http://127.0.0.1:{port}/xlsa17.zip", "cannot download http://127.0.0.1:"),
        ("ftp://127.0.0.1/xlsa17.zip", "must start with http:// or https://"),
    ],
)
def test_network_and_url_errors_are_one_line(server, tmp_path, url, message) -> None:
    _, base = server
    target = tmp_path / "data"
    result = invoke(
        "data", "download", "xlsa17", "--to", str(target), "--url", url.format(base=base, port=closed_port())
    )
    assert message in error_line(result)
    assert leftovers(target) == []


def test_bad_sha256_option_is_refused_before_fetching(server, tmp_path) -> None:
    served, base = server
    result = invoke("data", "download", "xlsa17", "--to", str(tmp_path), "--url", f"{base}/x.zip", "--sha256", "abc")
    assert "64 hexadecimal digits" in error_line(result)
    assert served.requests == []


def test_check_reports_an_invalid_present_dataset_and_fails(tmp_path) -> None:
    root = tmp_path / "data"
    for name, body in xlsa17_tree("AWA2").items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    (root / "xlsa17" / "data" / "SUN").mkdir(parents=True)
    (root / "xlsa17" / "data" / "SUN" / "att_splits.mat").write_bytes(b"not a mat file")
    apy = root / "APY"
    apy.mkdir()
    (apy / "res101.mat").write_bytes(xlsa17_tree()["xlsa17/data/CUB/res101.mat"])
    (apy / "att_splits.mat").write_bytes(b"not a mat file")

    result = invoke("data", "check", "--data-dir", str(root))
    assert result.exit_code == 2
    rows = table_rows(result.stdout)
    assert {name: row[0] for name, row in rows.items()} == {
        "apy": "INVALID",
        "awa1": "absent",
        "awa2": "valid",
        "cub": "absent",
        "flo": "absent",
        "sun": "INVALID",
    }
    assert rows["sun"][-1] == f"{root}/xlsa17/data/SUN/res101.mat: file not found (att_splits.mat is there)"
    assert rows["apy"][-1].startswith(f"{apy}/att_splits.mat: ")
    assert result.stderr == "error: 2 present dataset(s) invalid: apy, sun (reasons above)\n"

    only_valid = invoke("data", "check", "awa2", "cub", "--data-dir", str(root))
    assert only_valid.exit_code == 0  # absent is not an error


def test_unpack_keeps_the_target_untouched_when_an_archive_fails(tmp_path) -> None:
    """A member failing its CRC midway leaves neither a partial tree nor the staging folder."""
    body = bytearray(zip_of({"xlsa17/a.txt": b"a" * 1000, "xlsa17/b.txt": b"b" * 1000}))
    archive = tmp_path / "x.zip"
    offset = body.index(b"xlsa17/b.txt") + len("xlsa17/b.txt")  # first data byte of b.txt's local entry
    body[offset] ^= 0xFF
    archive.write_bytes(bytes(body))
    target = tmp_path / "target"
    with pytest.raises(DataError, match="corrupt or truncated archive"):
        unpack(archive, target)
    assert leftovers(target) == []


def test_an_archive_without_the_release_folder_is_refused_even_when_accepted_unverified(server, tmp_path) -> None:
    """Another file at the same URL (a moved page, a readme) is not unpacked as if it were the data."""
    served, base = server
    served.files["/xlsa17.zip"] = zip_of({"readme.txt": b"the data moved"})
    target = tmp_path / "data"
    result = invoke(
        "data", "download", "xlsa17", "--to", str(target), "--url", f"{base}/xlsa17.zip", "--accept-unverified"
    )
    assert "holds readme.txt, not the release's folder 'xlsa17/'; nothing unpacked" in error_line(result)
    assert leftovers(target) == []
