"""benchmarks/same_results.py: two results trees are the same where values are, whatever their provenance says;
any changed value, table byte or missing file is reported."""

from __future__ import annotations

import importlib.util

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from b2m.io import write_npy, write_parquet
from conftest import REPO

spec = importlib.util.spec_from_file_location("same_results", REPO / "benchmarks" / "same_results.py")
same_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(same_results)


def results_tree(root, params: dict, value: float = 0.5):
    """A small results tree: a summary TSV, an array with its sidecar, a Parquet table, an .npz, a NIfTI map, a clip
    and a log, each written with the provenance ``params``."""
    (root / "summary").mkdir(parents=True)
    (root / "summary/identification.tsv").write_text(f"subject\tvalue\nsub-001\t{value}\n")
    write_npy(root / "a/predictions.npy", np.full((3, 2), value, dtype=np.float32), params)
    write_parquet(root / "a/scores.parquet", pd.DataFrame({"r": [value, 0.1], "q": [np.nan, 0.2]}), params)
    np.savez(root / "a/factors.npz", U=np.eye(2) * value)
    nib.save(nib.Nifti1Image(np.full((2, 2, 2), value, np.float32), np.eye(4)), root / "a/r.nii.gz")
    sf.write(root / "a/clip.flac", np.full(100, value / 2, np.float32), 8000)
    (root / "report").mkdir()
    (root / "report/figure.svg").write_text(f'<svg><text>{value}</text></svg>')
    serial = len(str(params))  # an embedded clip's bytes differ between writes (Ogg's random serial number)
    (root / "report/page.html").write_text(f'<p>{value}</p><audio src="data:audio/ogg;base64,T2dn{serial}"></audio>')
    (root / "logs").mkdir()
    (root / "logs/job.log").write_text(str(params))
    return root


def test_trees_differing_in_provenance_only_are_the_same(tmp_path):
    before = results_tree(tmp_path / "before", {"stage": "decode", "responses": "x"})
    after = results_tree(tmp_path / "after", {"stage": "decode", "responses": "y", "options": {}})
    counts, problems = same_results.compare(before, after)
    assert problems == []
    assert counts == {".tsv": 1, ".npy": 1, ".json": 1, ".parquet": 1, ".npz": 1, ".nii.gz": 1, ".flac": 1,
                      ".svg": 1, ".html": 1}


@pytest.mark.parametrize("changed", ["summary/identification.tsv", "a/predictions.npy", "a/scores.parquet",
                                     "a/factors.npz", "a/r.nii.gz", "a/clip.flac", "report/figure.svg",
                                     "report/page.html"])
def test_a_changed_value_is_reported(tmp_path, changed):
    before = results_tree(tmp_path / "before", {})
    other = results_tree(tmp_path / "other", {}, value=0.25)
    after = results_tree(tmp_path / "after", {})
    (after / changed).write_bytes((other / changed).read_bytes())
    _, problems = same_results.compare(before, after)
    assert len(problems) == 1 and problems[0].startswith(changed), problems
    assert same_results.main([str(before), str(after)]) == 1


def test_a_missing_file_is_reported(tmp_path):
    before = results_tree(tmp_path / "before", {})
    after = results_tree(tmp_path / "after", {})
    (after / "a/scores.parquet").unlink()
    _, problems = same_results.compare(before, after)
    assert problems == [f"only in {before}: a/scores.parquet"]
