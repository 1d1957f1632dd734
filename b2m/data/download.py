"""Download an OpenNeuro dataset (ds003720) from its public S3 bucket: anonymous, resumable, checked, and only
the subjects asked for.

The bucket is listed with S3's ListObjectsV2 (``?list-type=2&prefix=<dataset>/``), which gives every file's
size and ETag. The dataset's top-level files (dataset_description.json, participants.tsv, task sidecars, …)
and the ``sub-XXX/`` folders of the requested subjects are fetched; ``derivatives/`` is not. Each file is
written to ``<name>.part`` and continued with an HTTP Range request after an interruption, then checked
against the listed size (and against the ETag where it is a plain MD5, i.e. a single-part upload) before it is
renamed into place. A file already present with the listed size is skipped.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from b2m.errors import InputError
from b2m.io import file_digest

log = logging.getLogger(__name__)

OPENNEURO_S3 = "https://s3.amazonaws.com/openneuro.org"
S3_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"
CHUNK_BYTES = 1 << 20
ATTEMPTS = 5


@dataclass(frozen=True)
class RemoteFile:
    """One file of the bucket: its key (``ds003720/sub-001/...``), size in bytes and ETag."""

    key: str
    size: int
    etag: str


def _get(url: str, headers: dict | None = None, timeout: float = 60.0):
    request = urllib.request.Request(url, headers={"User-Agent": "b2m", **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)


def list_files(base_url: str, dataset: str) -> list[RemoteFile]:
    """Every file under ``<dataset>/`` in the bucket, following ListObjectsV2's continuation tokens."""
    files, token = [], None
    while True:
        query = {"list-type": "2", "prefix": f"{dataset}/", **({"continuation-token": token} if token else {})}
        url = f"{base_url}/?{urllib.parse.urlencode(query)}"
        try:
            with _get(url) as response:
                root = ElementTree.fromstring(response.read())
        except (OSError, ElementTree.ParseError) as err:
            raise InputError(url, f"cannot list the dataset ({err})", "check the network and `dataset.download_url`") \
                from err
        for item in root.iter(f"{S3_NAMESPACE}Contents"):
            files.append(RemoteFile(item.findtext(f"{S3_NAMESPACE}Key"), int(item.findtext(f"{S3_NAMESPACE}Size")),
                                    item.findtext(f"{S3_NAMESPACE}ETag", "").strip('"')))
        if root.findtext(f"{S3_NAMESPACE}IsTruncated") != "true":
            return files
        token = root.findtext(f"{S3_NAMESPACE}NextContinuationToken")


def wanted(remote: RemoteFile, dataset: str, subjects, metadata_only: bool = False) -> bool:
    """Top-level files and the requested subjects' folders; never derivatives or other subjects, and no images
    (``.nii``, ``.nii.gz``) when ``metadata_only``."""
    relative = remote.key[len(dataset) + 1:]
    first = relative.split("/", 1)[0]
    if not relative or relative.endswith("/") or first == "derivatives":
        return False
    if metadata_only and relative.endswith((".nii", ".nii.gz")):
        return False
    return first in subjects if first.startswith("sub-") else "/" not in relative


def fetch_file(base_url: str, remote: RemoteFile, target: Path) -> int:
    """Download one file to ``target`` (resuming its ``.part``), check it, rename it; returns the bytes fetched."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    url = f"{base_url}/{urllib.parse.quote(remote.key)}"
    fetched = 0
    for attempt in range(1, ATTEMPTS + 1):
        have = part.stat().st_size if part.exists() else 0
        if have > remote.size:
            part.unlink()
            have = 0
        if have < remote.size:
            try:
                with _get(url, {"Range": f"bytes={have}-"} if have else None) as response:
                    mode = "ab" if response.status == 206 else "wb"  # a server without ranges sends it all
                    with open(part, mode) as f:
                        for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                            f.write(block)
                            fetched += len(block)
            except (OSError, http.client.HTTPException) as err:  # IncompleteRead is an HTTPException
                log.warning("%s: %s", remote.key, err)
        size = part.stat().st_size if part.exists() else 0
        if size != remote.size:
            log.warning("%s: interrupted at %d bytes of %d; attempt %d of %d", remote.key, size, remote.size,
                        attempt, ATTEMPTS)
            time.sleep(min(2 ** attempt, 30) if attempt < ATTEMPTS else 0)
            continue
        if re.fullmatch(r"[0-9a-f]{32}", remote.etag) and file_digest(part, "md5") != remote.etag:
            part.unlink()
            raise InputError(target, f"downloaded bytes do not match the listed MD5 {remote.etag}",
                             "run the download again (the file is fetched anew)")
        part.replace(target)
        return fetched
    raise InputError(target, f"download incomplete after {ATTEMPTS} attempts ({remote.size} bytes listed)",
                     "run the download again: it resumes from the partial file")


def download_dataset(out_dir, dataset: str, subjects, base_url: str = OPENNEURO_S3,
                     metadata_only: bool = False) -> dict:
    """Fetch ``dataset``'s top-level files and the ``subjects``' folders into ``out_dir`` (without the images
    when ``metadata_only``: the authors' arrays need only the events). Returns a summary (files, bytes listed,
    bytes fetched now, files already present)."""
    out_dir = Path(out_dir)
    listing = list_files(base_url.rstrip("/"), dataset)
    chosen = [f for f in listing if wanted(f, dataset, set(subjects), metadata_only)]
    found = {f.key.split("/")[1] for f in listing if f.key.count("/") > 1 and f.key.split("/")[1].startswith("sub-")}
    missing = sorted(set(subjects) - found)
    if missing:
        raise InputError(f"{base_url}/{dataset}", f"subjects {missing} are not in the dataset",
                         f"choose among {sorted(found)}")
    total, fetched, present = sum(f.size for f in chosen), 0, 0
    began = time.perf_counter()
    for number, remote in enumerate(chosen, start=1):
        target = out_dir / remote.key[len(dataset) + 1:]
        if target.exists() and target.stat().st_size == remote.size:
            present += 1
            continue
        fetched += fetch_file(base_url.rstrip("/"), remote, target)
        log.info("%d/%d files; %.1f of %.1f MB fetched (%.0f s)", number, len(chosen), fetched / 1e6, total / 1e6,
                 time.perf_counter() - began)
    return {"files": len(chosen), "bytes": total, "fetched_bytes": fetched, "already_present": present}
