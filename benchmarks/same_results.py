"""Whether two results trees (a pipeline run before and after a change) hold the same results.

    python benchmarks/same_results.py BEFORE/results AFTER/results

"The same" as the project means it: TSV tables byte for byte; every array (``.npy``, each member of ``.npz``),
NIfTI map (data and affine), Parquet table (columns, index and values; dtypes too) and audio file (samples and
rate) equal in value; a JSON sidecar (``<file>.json`` beside its file) equal but for provenance. Provenance
metadata (Parquet schema metadata, the sidecars' ``params``/``b2m_version``, NIfTI header text) is left out: it
records each stage's arguments, which a refactor may change. The report's figures (SVG, PNG; the same library
versions on both sides give the same bytes) are compared byte for byte, its HTML pages with their embedded audio
left out (``data:`` URIs: an Ogg Vorbis stream carries a random serial number, so no two writes of one clip are
the same bytes; the clips themselves are compared as audio). Logs and Snakemake's benchmarks are not compared.
Prints one line per kind of file and every difference; exits 1 where anything differs or a file is missing on
either side.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pandas as pd
import soundfile as sf

SKIPPED_FOLDERS = ("logs", "benchmarks")
SKIPPED_SUFFIXES = (".snakemake_timestamp", ".log", ".txt")
DATA_URI = re.compile(rb'data:[^"\']*')


def same_bytes(a: Path, b: Path) -> str:
    return "" if a.read_bytes() == b.read_bytes() else "bytes differ"


def same_array(a, b) -> str:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shape/dtype {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    equal = np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    return "" if equal else f"values differ (max |Δ| {np.nanmax(np.abs(a.astype(float) - b.astype(float))):.3g})"


def same_npy(a: Path, b: Path) -> str:
    return same_array(np.load(a, allow_pickle=False), np.load(b, allow_pickle=False))


def same_npz(a: Path, b: Path) -> str:
    with np.load(a, allow_pickle=False) as left, np.load(b, allow_pickle=False) as right:
        if sorted(left.files) != sorted(right.files):
            return f"members differ: {sorted(set(left.files) ^ set(right.files))[:5]}"
        for name in left.files:
            if name != "params" and (why := same_array(left[name], right[name])):
                return f"{name}: {why}"
    return ""


def same_parquet(a: Path, b: Path) -> str:
    try:
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), check_exact=True)
    except AssertionError as err:
        return " ".join(str(err).split())[:300]
    return ""


def same_nifti(a: Path, b: Path) -> str:
    left, right = nib.load(a), nib.load(b)
    return same_array(left.affine, right.affine) or same_array(left.get_fdata(), right.get_fdata())


def same_sidecar(a: Path, b: Path) -> str:
    def described(path):
        record = json.loads(path.read_text())
        return {key: value for key, value in record.items() if key not in ("params", "b2m_version")}

    return "" if described(a) == described(b) else "the sidecars differ beyond provenance"


def same_page(a: Path, b: Path) -> str:
    pages = [DATA_URI.sub(b"data:", path.read_bytes()) for path in (a, b)]
    return "" if pages[0] == pages[1] else "the pages differ (embedded audio left out)"


def same_audio(a: Path, b: Path) -> str:
    (left, rate_a), (right, rate_b) = sf.read(a, dtype="float32"), sf.read(b, dtype="float32")
    return f"rate {rate_a} vs {rate_b}" if rate_a != rate_b else same_array(left, right)


COMPARISONS: dict[str, Callable[[Path, Path], str]] = {
    ".tsv": same_bytes, ".npy": same_npy, ".npz": same_npz, ".parquet": same_parquet, ".nii.gz": same_nifti,
    ".nii": same_nifti, ".json": same_sidecar, ".flac": same_audio, ".wav": same_audio, ".html": same_page,
    ".svg": same_bytes, ".png": same_bytes,
}


def kind_of(path: Path) -> str | None:
    """The comparison a file gets (its longest matching suffix), or None where it is not compared."""
    name = path.name
    if any(part in SKIPPED_FOLDERS for part in path.parts) or name.endswith(SKIPPED_SUFFIXES):
        return None
    kind = max((s for s in COMPARISONS if name.endswith(s)), key=len, default=".other")
    return kind if kind != ".json" or path.with_suffix("").suffix else ".other"  # a sidecar: <file>.<ext>.json


def compared_files(root: Path) -> dict[Path, str]:
    """Relative path → kind of every compared file under ``root``."""
    files = (p.relative_to(root) for p in root.rglob("*") if p.is_file())
    return {path: kind for path in files if (kind := kind_of(path))}


def compare(before: Path, after: Path) -> tuple[Counter, list[str]]:
    """(files compared by kind, the differences) of two results trees."""
    left, right = compared_files(before), compared_files(after)
    problems = [f"only in {before}: {p}" for p in sorted(set(left) - set(right))]
    problems += [f"only in {after}: {p}" for p in sorted(set(right) - set(left))]
    counts = Counter()
    for path in sorted(set(left) & set(right)):
        kind = left[path]
        counts[kind] += 1
        why = COMPARISONS.get(kind, same_bytes)(before / path, after / path)
        if why:
            problems.append(f"{path}: {why}")
    return counts, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    counts, problems = compare(args.before, args.after)
    for kind, n in sorted(counts.items()):
        print(f"{kind:10s} {n:5d} compared")
    print("\n".join(problems) or "the same results")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
