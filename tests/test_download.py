"""The OpenNeuro download against a local HTTP server that speaks S3's ListObjectsV2 and HTTP ranges, serving
the real ds003720 metadata tree of shared/real plus a BOLD file (it cuts one transfer mid-file), and the real
ds000171 and ds004007 metadata trees."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from b2m.data.bids import BidsDataset
from b2m.data.download import download_dataset
from b2m.errors import InputError

PAGE = 50  # keys per listing page, so the listing paginates


class Bucket(BaseHTTPRequestHandler):
    """S3 in miniature: ``files`` (key → bytes), ``etags`` overrides, ``cut`` keys whose first transfer stops
    half-way; ``requests`` records (key, range header)."""

    files: dict = {}
    etags: dict = {}
    cut: set = set()
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/":
            return self.listing(urllib.parse.parse_qs(url.query))
        key = urllib.parse.unquote(url.path[1:])
        if key not in self.files:
            self.send_error(404)
            return
        data, header = self.files[key], self.headers.get("Range")
        self.requests.append((key, header))
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if key in self.cut:
            self.cut.discard(key)
            self.wfile.write(data[start:start + (len(data) - start) // 2])
            self.close_connection = True
            return
        self.wfile.write(data[start:])

    def listing(self, query):
        prefix = query["prefix"][0]
        keys = sorted(k for k in self.files if k.startswith(prefix))
        start = int(query.get("continuation-token", ["0"])[0])
        page = keys[start:start + PAGE]
        more = start + PAGE < len(keys)
        items = "".join(f"<Contents><Key>{k}</Key><Size>{len(self.files[k])}</Size><ETag>\"{self.etag(k)}\"</ETag>"
                        "</Contents>" for k in page)
        body = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"{items}<IsTruncated>{'true' if more else 'false'}</IsTruncated>"
                + (f"<NextContinuationToken>{start + PAGE}</NextContinuationToken>" if more else "")
                + "</ListBucketResult>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def etag(self, key):
        return self.etags.get(key, hashlib.md5(self.files[key]).hexdigest())


def tree_files(real, accession: str) -> dict:
    """The bucket's keys and bytes of a real metadata tree of shared/real."""
    tree = real / accession
    return {f"{accession}/{p.relative_to(tree)}": p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def serving(files: dict, cut=()):
    """The bucket's address while it serves ``files``, the first transfer of each of ``cut`` cut half-way."""
    Bucket.files, Bucket.etags, Bucket.cut, Bucket.requests = files, {}, set(cut), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Bucket)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture()
def bucket(real):
    files = tree_files(real, "ds003720")
    bold = "ds003720/sub-001/func/sub-001_task-Training_run-01_bold.nii"
    files[bold] = np.random.default_rng(0).bytes(300_000)
    files["ds003720/derivatives/fmriprep/sub-001/x.nii.gz"] = b"derived"
    with serving(files, cut={bold}) as url:
        yield url, files, bold


def test_download_fetches_only_the_asked_subjects_and_resumes(bucket, tmp_path, caplog):
    url, files, bold = bucket
    out = tmp_path / "ds003720"
    summary = download_dataset(out, "ds003720", ["sub-001", "sub-003"], base_url=url)
    expected = {k[len("ds003720/"):] for k in files
                if k.count("/") == 1 or k.split("/")[1] in ("sub-001", "sub-003")}
    got = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert got == expected and summary["files"] == len(expected) and len(files) > 100  # paginated listing
    assert all((out / name).read_bytes() == files[f"ds003720/{name}"] for name in expected)
    assert "interrupted at 150000 bytes" in caplog.text
    assert [h for k, h in Bucket.requests if k == bold] == [None, "bytes=150000-"]  # resumed, not restarted
    again = download_dataset(out, "ds003720", ["sub-001", "sub-003"], base_url=url)
    assert again["already_present"] == len(expected) and again["fetched_bytes"] == 0


def test_download_checks_md5_and_subjects(bucket, tmp_path):
    url, files, bold = bucket
    Bucket.cut = set()
    Bucket.etags = {bold: "0" * 32}
    with pytest.raises(InputError, match="do not match the listed MD5"):
        download_dataset(tmp_path / "ds", "ds003720", ["sub-001"], base_url=url)
    assert not (tmp_path / "ds" / bold[len("ds003720/"):]).exists()
    assert not Path(str(tmp_path / "ds" / bold[len("ds003720/"):]) + ".part").exists()
    metadata = download_dataset(tmp_path / "meta", "ds003720", ["sub-001"], base_url=url, metadata_only=True)
    assert metadata["files"] > 0 and not list((tmp_path / "meta").rglob("*.nii"))
    assert (tmp_path / "meta/sub-001/func/sub-001_task-Training_run-01_events.tsv").exists()
    with pytest.raises(InputError, match="sub-009"):
        download_dataset(tmp_path / "ds", "ds003720", ["sub-009"], base_url=url)


@pytest.mark.parametrize("accession, subject", [("ds000171", "sub-mdd01"), ("ds004007", "sub-02")])
def test_a_metadata_download_brings_what_the_runs_inherit(real, tmp_path, accession, subject):
    """ds000171's runs have only top-level sidecars, ds004007's a top-level one and their own: one subject's
    metadata download reads as the whole dataset does for that subject (runs, sidecar chains, TRs, events)."""
    with serving(tree_files(real, accession)) as url:
        download_dataset(tmp_path / accession, accession, [subject], base_url=url, metadata_only=True)
    here, there = BidsDataset(tmp_path / accession), BidsDataset(real / accession)
    assert here.subjects() == [subject]
    fetched, full = here.runs(subject), there.runs(subject)
    assert [r.stem for r in fetched] == [r.stem for r in full] and len(fetched) in (2, 5)
    for mine, theirs in zip(fetched, full):
        assert [p.relative_to(tmp_path / accession) for p in mine.sidecars] == \
            [p.relative_to(real / accession) for p in theirs.sidecars]
        assert mine.metadata() == theirs.metadata() and mine.repetition_time() == theirs.repetition_time()
        assert mine.events.read_bytes() == theirs.events.read_bytes()
