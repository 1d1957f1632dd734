"""The report's figures and tables: each number against a hand computation, the files the CLI writes, and
figures that are the same bytes when made twice."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from b2m.report import figures, published
from conftest import SUBPROCESS_ENV


def scores_table() -> pd.DataFrame:
    rows = []
    for subject, offset in (("sub-001", 0.0), ("sub-002", 0.02), ("sub-003", 0.04)):
        for feature in ("clap-musicldm", "genre"):
            for level in ("window", "clip"):
                rows.append({"subject": subject, "fold": "test", "feature": feature, "model": "whole-mask",
                             "level": level, "metric": "identification_accuracy", "value": 0.8 + offset,
                             "ci_low": 0.7 + offset, "ci_high": 0.9 + offset, "chance_mean": 0.5 + offset / 4,
                             "chance_sd": 0.05})
                rows.append({**rows[-1], "fold": "genre-rock", "value": 0.1})
                rows.append({**rows[-2], "metric": "embedding_correlation", "value": 0.3})
    return pd.DataFrame(rows)


def test_identification_comparison_against_hand_means_and_the_paper():
    table = figures.identification_comparison(scores_table(), {"clap-musicldm": "clap-audio", "genre": "genre"})
    assert len(table) == 4 + 7 and table["subjects"].tolist() == [3] * 4 + [""] * 7  # 7 published results alone
    row = table[(table.feature == "clap-musicldm") & (table.level == "clip")].iloc[0]
    assert row["mean"] == pytest.approx(0.82) and row["sd"] == pytest.approx(np.std([0.8, 0.82, 0.84], ddof=1))
    assert row["chance"] == pytest.approx(0.505)
    # an extractor standing in for MuLan-music compares with the paper's 0.876 ± 0.015, whatever its name
    assert (row["paper_space"], row["paper_mean"], row["paper_sd"]) == ("MuLan-music", 0.876, 0.015)
    genre = table[table.feature == "genre"]
    assert (genre["paper_space"] == "").all() and genre["paper_mean"].isna().all()
    assert table.loc[table.feature != "", "ciferri_mean"].isna().all()  # no pooled-aligned row: nothing beside


def pooled_scores() -> pd.DataFrame:
    """``scores_table`` with a pooled-aligned decoder on the CLAP-audio space (0.9 for every subject)."""
    scores = scores_table()
    pooled = scores[scores.feature == "clap-musicldm"].assign(model="pooled-aligned", value=0.9)
    return pd.concat([scores, pooled], ignore_index=True)


def test_table2_sets_ciferri_beside_the_pooled_aligned_clap_decoder_and_shows_the_rest_alone():
    """The published numbers of Ciferri, Ferrante & Toschi 2025 (issue 36): 0.914 ± 0.019 beside the pooled-aligned
    decoder of a CLAP-audio space (and the paper's 0.876 ± 0.015 too); 0.796 (anatomical alignment), 0.823 ± 0.029
    (generated audio) and 85.7 % (listening test) alone, each naming b2m's counterpart, as are the paper's rows of
    the spaces the study lacks."""
    table = figures.identification_comparison(pooled_scores(), {"clap-musicldm": "clap-audio", "genre": "genre"})
    ours = table[table.feature != ""]
    pooled = ours[ours.model == "pooled-aligned"]
    assert len(pooled) == 2 and pooled["mean"].tolist() == pytest.approx([0.9, 0.9])
    assert pooled[["ciferri_space", "ciferri_mean", "ciferri_sd"]].drop_duplicates().values.tolist() == [
        ["CLAP", 0.914, 0.019]]
    assert pooled[["paper_space", "paper_mean", "paper_sd"]].drop_duplicates().values.tolist() == [
        ["MuLan-music", 0.876, 0.015]]
    assert ours.loc[ours.model == "whole-mask", "ciferri_mean"].isna().all()
    alone = table[table.feature == ""]
    assert sorted(alone["ciferri_mean"].dropna()) == [0.796, 0.823, 0.857]
    assert sorted(alone["paper_space"][alone["paper_space"] != ""]) == ["MuLan-text", "SoundStream-avg",
                                                                        "w2v-BERT-avg"]
    assert alone["mean"].isna().all() and (alone["subjects"] == "").all()
    said = dict(zip(alone["ciferri_mean"], alone["published"]))
    assert "generation.select: brain" in said[0.823] and "foil scheme random" in said[0.857]
    assert "anatomical alignment only" in said[0.796] and alone.loc[alone.ciferri_mean == 0.823, "ciferri_sd"].item() \
        == 0.029
    assert (ours["published"] == "").all() and table["published"].ne("").sum() == len(alone)


def test_every_published_number_is_in_one_registry():
    """The figure's markers and Table 2 read ``b2m.report.published`` alone: each published number once."""
    numbers = [(p.study.name, p.mean, p.sd) for p in published.PUBLISHED]
    assert len(set(numbers)) == len(numbers) == 8
    assert {p.mean for p in published.PUBLISHED if p.study == published.CIFERRI} == {0.914, 0.796, 0.823, 0.857}
    assert "10.1038/s41598-025-26095-w" in published.citations() and "2307.11078" in published.citations()
    assert not hasattr(figures, "PAPER_TABLE2")


def test_the_identification_figure_marks_each_studys_number_beside_its_row():
    scores = pooled_scores()
    table = figures.identification_comparison(scores, {"clap-musicldm": "clap-audio", "genre": "genre"})
    figure = figures.plot_identification(scores, table)
    axis = figure.axes[0]
    marked = {line.get_marker(): line.get_ydata()[0] for line in axis.lines if line.get_marker() in ("D", "^")}
    assert marked == {"D": pytest.approx(0.876), "^": pytest.approx(0.914)}
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert [s.name for s in published.STUDIES] == [t for t in legend if "et al." in t]


@pytest.fixture
def results(tmp_path):
    """Encoding outputs of 2 subjects × 2 spaces and banded ridge on a 4×4×3 grid: 20 voxels, 2 ROIs."""
    rng = np.random.default_rng(0)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for subject in ("sub-001", "sub-002"):
        mask = np.zeros((4, 4, 3), np.uint8)
        mask.reshape(-1)[rng.choice(48, 20, replace=False)] = 1
        ijk = np.argwhere(mask)
        responses = tmp_path / subject / "responses"
        responses.mkdir(parents=True)
        nib.save(nib.Nifti1Image(mask, affine), responses / "mask.nii.gz")
        pd.DataFrame({"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2],
                      "roi": np.repeat([1, 2], 10)}).to_parquet(responses / "voxels.parquet")
        for feature in ("acoustic", "genre", "banded"):
            r = rng.uniform(-0.2, 0.8, 20)
            voxels = pd.DataFrame({"r": r, "q": np.where(r > 0.3, 0.01, 0.5)})
            if feature == "banded":
                voxels["r2_acoustic"] = rng.uniform(0, 0.2, 20)
                voxels["r2_genre"] = rng.uniform(0, 0.2, 20)
            folder = tmp_path / subject / "test" / feature / "encoding"
            folder.mkdir(parents=True)
            voxels.to_parquet(folder / "voxels.parquet")
            if feature != "banded":  # the decoders' ROI table (decode's rois.parquet)
                share = rng.uniform(0, 1)
                (tmp_path / subject / "test" / feature / "decoding").mkdir()
                pd.DataFrame({"roi": [2, 1], "n_voxels": [10, 10], "cv_score": [-0.9, -0.95], "selected": [True, False],
                              "banded_weight": [0.6, 0.4], "banded_share": [share, 1 - share]}).to_parquet(
                    tmp_path / subject / "test" / feature / "decoding" / "rois.parquet")
    return tmp_path


@pytest.fixture
def inputs(results) -> figures.FigureInputs:
    """The fixture's files as the report job names them."""
    pairs = [(s, f) for s in ("sub-001", "sub-002") for f in ("acoustic", "genre", "banded")]
    return figures.FigureInputs(
        encoding={(s, f): results / s / "test" / f / "encoding" / "voxels.parquet" for s, f in pairs},
        scans={s: results / s / "responses" for s in ("sub-001", "sub-002")},
        rois={(s, f): results / s / "test" / f / "decoding" / "rois.parquet" for s, f in pairs if f != "banded"})


def test_significant_map_places_r_at_the_significant_voxels(results, inputs):
    voxels = figures.encoding_voxels(inputs, "sub-001", "acoustic")
    image = figures.significant_map(voxels, results / "sub-001/responses/mask.nii.gz").get_fdata()
    values = image[voxels.i, voxels.j, voxels.k]
    np.testing.assert_allclose(values, np.where(voxels.q < 0.05, voxels.r, 0), rtol=1e-6)
    assert np.count_nonzero(image) == (voxels.q < 0.05).sum()


def test_significance_classes():
    classes = figures.significance_class(np.array([0.01, 0.01, 0.5, 0.5]), np.array([0.01, 0.5, 0.01, 0.5]), "a", "b")
    assert classes.tolist() == ["both", "a only", "b only", "neither"]


def test_roi_table_against_hand_counts(results, inputs):
    table = figures.roi_table(inputs, ["sub-001"], ["acoustic"], {1: "left auditory"})
    voxels = pd.read_parquet(results / "sub-001/test/acoustic/encoding/voxels.parquet")
    first = voxels.iloc[:10]
    row = table[table.roi == "left auditory"].iloc[0]
    assert row["voxels"] == 10 and row["significant"] == (first.q < 0.05).sum()
    assert row["mean_r"] == pytest.approx(first.r.mean()) and row["max_r"] == pytest.approx(first.r.max())
    assert table.roi.tolist() == ["left auditory", "2"]  # an unnamed label keeps its number


def test_decoding_roi_table_names_the_rois_largest_share_first(inputs):
    table = figures.decoding_roi_table(inputs, ["sub-001", "sub-002"], ["acoustic", "genre"], {1: "A1", 2: "V1"})
    assert len(table) == 8 and set(table.roi) == {"A1", "V1"}
    for _, group in table.groupby(["subject", "feature"]):
        assert group.banded_share.is_monotonic_decreasing and group.banded_share.sum() == pytest.approx(1)
        assert group.set_index("roi").loc["V1", "banded_weight"] == 0.6


def test_variance_partition_over_the_significant_voxels(results, inputs):
    table = figures.variance_partition_table(inputs, ["sub-001"])
    voxels = pd.read_parquet(results / "sub-001/test/banded/encoding/voxels.parquet")
    significant = voxels[voxels.q < 0.05]
    acoustic = table[table.space == "acoustic"].iloc[0]
    assert acoustic["significant_voxels"] == len(significant)
    assert acoustic["mean_r2"] == pytest.approx(significant.r2_acoustic.mean())
    assert acoustic["voxels_largest"] == (significant.r2_acoustic > significant.r2_genre).sum()
    assert table["voxels_largest"].sum() == len(significant)


def keyed(flag: str, paths: dict) -> list[str]:
    """A report stage's ``KEY=PATH`` arguments of ``paths`` (key → path, a key a subject or a tuple)."""
    return [flag] + [f"{':'.join(key) if isinstance(key, tuple) else key}={path}" for key, path in paths.items()]


def test_report_figures_command_writes_every_figure_the_same_twice(inputs, tmp_path):
    scores = scores_table().replace({"clap-musicldm": "acoustic"})
    scores.to_parquet(tmp_path / "identification.parquet")
    labels = tmp_path / "labels.tsv"
    pd.DataFrame({"index": [1, 2], "name": ["A1", "V1"]}).to_csv(labels, sep="\t", index=False)
    outputs = []
    for run in ("first", "second"):
        out = tmp_path / run
        command = ["report-figures", *keyed("--encoding", inputs.encoding), *keyed("--scans", inputs.scans),
                   *keyed("--rois", inputs.rois), "--scores", str(tmp_path / "identification.parquet"),
                   "--subjects", "sub-001", "sub-002", "--extractors", '{"acoustic": "acoustic", "genre": "genre"}',
                   "--maps", "acoustic", "--scatter", "acoustic", "genre", "--roi-table", "acoustic", "genre",
                   "--atlas-labels", str(labels), "--banded", "--out", str(out)]
        subprocess.run([sys.executable, "-m", "b2m", *command], check=True, env=SUBPROCESS_ENV, capture_output=True)
        outputs.append(out)
    names = sorted(p.relative_to(outputs[0]).as_posix() for p in outputs[0].rglob("*") if p.is_file())
    assert names == ["decoding_roi_weights.html", "identification.svg", "maps/acoustic.png", "roi.html", "table2.html",
                     "variance_partitioning.html", "variance_partitioning.svg", "voxel_scatter.png"]
    for name in names:
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name
    table2 = (outputs[0] / "table2.html").read_text()
    assert "SoundStream-avg" in table2 and "0.914" in table2 and "doi:10.1038/s41598-025-26095-w" in table2
    assert "V1" in (outputs[0] / "roi.html").read_text()
