"""The report's figures and tables: identification accuracy beside the paper's Table 2 and the published results
of ``b2m.report.published``, encoding maps, a voxel
scatter of two spaces (the paper's Figure 6), ROI tables and variance partitioning of the banded model.

Inputs are the pipeline's own outputs, named by the job (``FigureInputs``): the summary table of decoding scores,
and per subject the encoding ``voxels.parquet`` of each space (one row per response column: r, q, ...), the
responses' ``voxels.parquet`` (i, j, k, roi) and ``mask.nii.gz``, and the decoders' ROI tables. Every figure is
written atomically, SVG without a date so reruns give the same bytes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from b2m.io import atomic_path  # noqa: E402
from b2m.layout import BANDED, ScanFiles  # noqa: E402
from b2m.models.decoders import DECODERS  # noqa: E402
from b2m.report.published import PUBLISHED, STUDIES, compared  # noqa: E402

Q_THRESHOLD = 0.05
STUDY_MARKERS = ("D", "^")  # each published study's marker in the identification figure, in STUDIES' order
# Each decoder's colour: matplotlib's tab10 in the registry's order.
MODEL_COLOURS = dict(zip(DECODERS, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                    "#7f7f7f", "#bcbd22", "#17becf")))


def save_figure(figure, path) -> None:
    """Write ``figure`` to ``path`` (.svg or .png) atomically; SVGs carry no date and a fixed id salt."""
    path = Path(path)
    with matplotlib.rc_context({"svg.hashsalt": "b2m"}), atomic_path(path) as tmp:
        metadata = {"Date": None} if path.suffix == ".svg" else {}
        figure.savefig(tmp, format=path.suffix[1:], metadata=metadata, dpi=110, bbox_inches="tight")
    plt.close(figure)


def write_html_table(path, table: pd.DataFrame, title: str, note: str = "") -> None:
    """A small self-contained HTML page holding ``table`` (floats to 3 decimals)."""
    body = table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:right}</style></head><body>"
            f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>{body}</body></html>")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")


# ---------------------------------------------------------------- decoding

def published_columns(study, result) -> dict:
    """``study``'s columns of a Table 2 row holding ``result`` (None: empty)."""
    sd = result.sd if result and result.sd is not None else np.nan
    return {f"{study.column}_space": result.space if result else "",
            f"{study.column}_mean": result.mean if result else np.nan, f"{study.column}_sd": sd}


def identification_comparison(scores: pd.DataFrame, extractors: dict[str, str], fold: str = "test") -> pd.DataFrame:
    """Identification accuracy on ``fold`` per feature × model × level: mean and sd over subjects (sd with
    ddof 1, as over the paper's 5 subjects), the mean measured chance, and beside it each published study's
    result (``b2m.report.published``) that the row compares to (``<study>_space``, ``_mean``, ``_sd``;
    ``extractors``: feature → extractor); then, alone, each published result no row compares to, ``published``
    saying what it measured and where b2m's counterpart is."""
    rows = scores[(scores["fold"] == fold) & (scores["metric"] == "identification_accuracy")]
    table = (rows.groupby(["feature", "model", "level"], sort=False)
             .agg(subjects=("subject", "nunique"), mean=("value", "mean"), sd=("value", "std"),
                  chance=("chance_mean", "mean"))
             .reset_index())
    found = {study: [compared(study, extractors.get(f, f), m) for f, m in zip(table["feature"], table["model"])]
             for study in STUDIES}
    for study, results in found.items():
        columns = pd.DataFrame([published_columns(study, r) for r in results],
                               columns=list(published_columns(study, None)))
        table = pd.concat([table, columns.set_axis(table.index)], axis=1)
    shown = {r for results in found.values() for r in results if r}
    alone = [{"feature": "", "model": "", "level": "", "subjects": "",
              **{k: v for s in STUDIES for k, v in published_columns(s, p if p.study == s else None).items()},
              "published": f"{p.study.name}: {p.measure}, {p.method}; b2m: {p.compares_to}"}
             for p in PUBLISHED if p not in shown]
    return pd.concat([table.assign(published=""), pd.DataFrame(alone)], ignore_index=True)


def plot_identification(scores: pd.DataFrame, comparison: pd.DataFrame, fold: str = "test"):
    """One panel per level: each subject's identification accuracy (point, 95 % bootstrap CI) per feature and
    decoder, the measured chance (grey bar: mean ± 2 sd) and the published results it compares to (black, ± sd:
    a diamond for the paper's Table 2, a triangle for Ciferri et al. 2025's)."""
    rows = scores[(scores["fold"] == fold) & (scores["metric"] == "identification_accuracy")]
    levels = list(dict.fromkeys(rows["level"]))
    features = list(dict.fromkeys(rows["feature"]))
    models = list(dict.fromkeys(rows["model"]))
    figure, axes = plt.subplots(1, len(levels), figsize=(2 + 1.6 * len(features) * len(levels), 4.2),
                                squeeze=False, sharey=True)
    for axis, level in zip(axes[0], levels):
        at_level, labelled = rows[rows["level"] == level], set()
        for x, feature in enumerate(features):
            of_feature = at_level[at_level["feature"] == feature]
            chance, chance_sd = of_feature["chance_mean"].mean(), of_feature["chance_sd"].mean()
            axis.bar(x, 4 * chance_sd, bottom=chance - 2 * chance_sd, width=0.8, color="#ddd", zorder=0)
            for m, model in enumerate(models):
                subjects = of_feature[of_feature["model"] == model]
                step = min(0.25, 0.65 / len(models))  # the models side by side within ±0.33 of the feature
                offset = x + (m - (len(models) - 1) / 2) * step
                spread = offset + np.linspace(-step / 4, step / 4, max(len(subjects), 1))[:len(subjects)]
                axis.errorbar(spread, subjects["value"], yerr=[subjects["value"] - subjects["ci_low"],
                                                               subjects["ci_high"] - subjects["value"]],
                              fmt="o", ms=4, lw=1, color=MODEL_COLOURS.get(model, "#555"),
                              label=model if x == 0 else None)
            for s, (study, marker) in enumerate(zip(STUDIES, STUDY_MARKERS)):
                published = comparison[(comparison["feature"] == feature)][f"{study.column}_mean"].dropna()
                if len(published):
                    sd = comparison.loc[published.index[0], f"{study.column}_sd"]
                    axis.errorbar(x + 0.38 + 0.08 * s, published.iloc[0], yerr=sd, fmt=marker, color="black",
                                  ms=5, label=study.name if study.name not in labelled else None)
                    labelled.add(study.name)
        axis.axhline(0.5, color="#999", lw=0.8, ls="--")
        axis.set_xticks(range(len(features)), features, rotation=30, ha="right")
        axis.set_title(f"{fold} fold, {level} level")
        axis.set_ylim(0.3, 1.0)
    axes[0][0].set_ylabel("identification accuracy")
    axes[0][0].legend(loc="lower left", fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def plot_kshot(table: pd.DataFrame):
    """One panel per fold × feature × level of the k-shot summary (``decode-kshot``'s scores): each left-out
    subject's identification accuracy (95 % bootstrap CI) against the minutes of its data its alignment learned
    from, the zero-shot end (0 minutes, square; absent where not available) and its own full-data decoder (star,
    at its whole training time) marked; chance 0.5 dashed."""
    rows = table[table["metric"] == "identification_accuracy"]
    panels = list(rows.groupby(["fold", "feature", "level"], sort=False).groups)
    figure, axes = plt.subplots(1, len(panels), figsize=(1 + 4.2 * len(panels), 4.2), squeeze=False, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (fold, feature, level) in zip(axes[0], panels):
        panel = rows[(rows["fold"] == fold) & (rows["feature"] == feature) & (rows["level"] == level)]
        for number, (subject, curve) in enumerate(panel.groupby("subject", sort=True)):
            colour = colours[number % len(colours)]
            shots = curve[curve["point"] != "full-data"].dropna(subset=["value"]).sort_values("minutes")
            axis.errorbar(shots["minutes"], shots["value"], yerr=[shots["value"] - shots["ci_low"],
                                                                  shots["ci_high"] - shots["value"]],
                          fmt="o-", ms=4, lw=1, color=colour, label=subject)
            for point, marker, size in (("zero-shot", "s", 9), ("full-data", "*", 13)):
                end = curve[(curve["point"] == point)].dropna(subset=["value"])
                axis.plot(end["minutes"], end["value"], marker, ms=size, mfc="none", color=colour)
        axis.plot([], [], "s", mfc="none", color="#555", label="zero-shot (0 min, anatomical)")
        axis.plot([], [], "*", ms=10, mfc="none", color="#555", label="own decoder, full data")
        axis.axhline(0.5, color="#999", lw=0.8, ls="--")
        axis.set_xscale("symlog", linthresh=1)
        ticks = sorted(panel["minutes"].unique())
        axis.set_xticks(ticks, [format(tick, ".3g") for tick in ticks])
        axis.set_xlim(-0.3, max(ticks) * 1.6)
        axis.set_xlabel("minutes of the left-out subject's training data")
        axis.set_title(f"k-shot: {feature}, {fold} fold, {level} level")
    axes[0][0].set_ylabel("identification accuracy")
    axes[0][0].legend(loc="lower right", fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------- encoding

@dataclass(frozen=True)
class FigureInputs:
    """The files the figures of one fold read: (subject, space) → its encoding ``voxels.parquet`` (space
    ``banded``: the banded model's), subject → its responses folder (voxel positions and mask; none for the
    authors' arrays), (subject, space) → its decoders' ROI table."""

    encoding: dict[tuple[str, str], Path]
    scans: dict[str, Path] = field(default_factory=dict)
    rois: dict[tuple[str, str], Path] = field(default_factory=dict)

    def mask(self, subject: str) -> Path:
        return ScanFiles(self.scans[subject]).mask


def encoding_voxels(files: FigureInputs, subject: str, feature: str) -> pd.DataFrame:
    """A subject's encoding voxel table (r, q, ...) joined to the voxels' positions and ROI labels (i, j, k,
    roi), where the subject has them: rows are response columns, in the same order for every feature of the
    subject."""
    scores = pd.read_parquet(files.encoding[subject, feature])
    if subject in files.scans:
        positions = ScanFiles(files.scans[subject]).voxels
        scores = pd.concat([pd.read_parquet(positions).reset_index(drop=True), scores.reset_index(drop=True)],
                           axis=1)
    return scores


def significant_map(voxels: pd.DataFrame, mask_path):
    """A NIfTI image of r at the voxels with q < 0.05, 0 elsewhere, on the mask's grid."""
    import nibabel as nib

    from b2m.models.encoding import voxel_map

    r = np.where(voxels["q"].to_numpy() < Q_THRESHOLD, voxels["r"].to_numpy(), 0.0).astype(np.float32)
    image = voxel_map(r, voxels, nib.load(mask_path))
    return nib.Nifti1Image(np.nan_to_num(image.get_fdata(dtype=np.float32)), image.affine)


def mask_background(mask_path):
    """The subject's mask as a mid-grey background image (native space has no anatomical template here)."""
    import nibabel as nib

    mask = nib.load(mask_path)
    return nib.Nifti1Image((np.asarray(mask.dataobj) > 0).astype(np.float32) * 0.5, mask.affine)


def plot_encoding_maps(files: FigureInputs, subjects: list[str], feature: str, glass_brain: bool = False):
    """Each subject's significant encoding r (q < 0.05) for one feature space: a glass brain for images in MNI
    space, else axial slices over the subject's mask (native space has no template to project onto)."""
    import gc

    from nilearn import plotting

    figure, axes = plt.subplots(len(subjects), 1, figsize=(10, 2.4 * len(subjects)), squeeze=False)
    for axis, subject in zip(axes[:, 0], subjects):
        gc.freeze()  # nilearn collects garbage before each image it reads: what exists now needs no scan
        voxels = encoding_voxels(files, subject, feature)
        mask = files.mask(subject)
        image = significant_map(voxels, mask)
        n_significant = int((voxels["q"] < Q_THRESHOLD).sum())
        title = f"{subject}: {n_significant} of {len(voxels)} voxels at q < {Q_THRESHOLD}"
        vmax = max(float(np.nanmax(np.abs(voxels["r"]))), 1e-3)
        if glass_brain:
            plotting.plot_glass_brain(image, axes=axis, figure=figure, colorbar=True, plot_abs=False,
                                      cmap="RdBu_r", vmax=vmax, symmetric_cbar=True, title=title)
        else:
            plotting.plot_stat_map(image, bg_img=mask_background(mask), axes=axis, figure=figure, display_mode="z",
                                   cut_coords=7, colorbar=True, cmap="RdBu_r", vmax=vmax, symmetric_cbar=True,
                                   black_bg=True, draw_cross=False, annotate=False, title=title)
    return figure


def significance_class(q_a: np.ndarray, q_b: np.ndarray, name_a: str, name_b: str) -> np.ndarray:
    """Per voxel: 'both', '<a> only', '<b> only' or 'neither', by q < 0.05 in each space."""
    a, b = q_a < Q_THRESHOLD, q_b < Q_THRESHOLD
    return np.select([a & b, a, b], ["both", f"{name_a} only", f"{name_b} only"], "neither")


def plot_voxel_scatter(files: FigureInputs, subjects: list[str], feature_a: str, feature_b: str):
    """The paper's Figure 6: per voxel, encoding r of one space against another, one panel per subject,
    coloured by where the voxel is significant (q < 0.05)."""
    figure, axes = plt.subplots(1, len(subjects), figsize=(3.6 * len(subjects), 3.8), squeeze=False)
    colours = {"both": "#7b3294", f"{feature_a} only": "#1f77b4", f"{feature_b} only": "#d95f02",
               "neither": "#bbb"}
    for axis, subject in zip(axes[0], subjects):
        a = encoding_voxels(files, subject, feature_a)
        b = encoding_voxels(files, subject, feature_b)
        classes = significance_class(a["q"].to_numpy(), b["q"].to_numpy(), feature_a, feature_b)
        for name, colour in colours.items():
            chosen = classes == name
            axis.scatter(a["r"][chosen], b["r"][chosen], s=4, color=colour, alpha=0.6, linewidths=0,
                         label=f"{name} ({chosen.sum()})")
        low = min(a["r"].min(), b["r"].min())
        high = max(a["r"].max(), b["r"].max())
        axis.plot([low, high], [low, high], color="black", lw=0.7)
        axis.set_xlabel(f"r, {feature_a}")
        axis.set_ylabel(f"r, {feature_b}")
        axis.set_title(subject)
        axis.legend(fontsize=7, frameon=False, markerscale=2)
    figure.tight_layout()
    return figure


def roi_table(files: FigureInputs, subjects: list[str], features: list[str], labels: dict[int, str]) -> pd.DataFrame:
    """Per subject × feature × ROI: voxels, voxels at q < 0.05, mean and max r; ROI names from ``labels``
    (atlas index → name; unnamed indices keep their number)."""
    records = []
    for subject in subjects:
        for feature in features:
            voxels = encoding_voxels(files, subject, feature)
            for roi, group in voxels[voxels["roi"] > 0].groupby("roi"):
                records.append({"subject": subject, "feature": feature, "roi": labels.get(int(roi), str(roi)),
                                "voxels": len(group), "significant": int((group["q"] < Q_THRESHOLD).sum()),
                                "mean_r": group["r"].mean(), "max_r": group["r"].max()})
    return pd.DataFrame(records)


def decoding_roi_table(files: FigureInputs, subjects: list[str], features: list[str],
                       labels: dict[int, str]) -> pd.DataFrame:
    """Per subject × feature × ROI, from the decoders' ROI tables: voxels, its share of the ROI-banded decoder's
    prediction and its kernel weight there (each sums to 1 over a subject × feature's ROIs), the ROI decoder's
    mean CV score and whether the ensemble averaged it; largest share first. ROI names from ``labels``."""
    tables = []
    for subject in subjects:
        for feature in features:
            table = pd.read_parquet(files.rois[subject, feature])
            tables.append(table.assign(subject=subject, feature=feature, roi=[labels.get(int(r), str(r))
                                                                                for r in table["roi"]]))
    columns = ["subject", "feature", "roi", "n_voxels", "banded_share", "banded_weight", "cv_score", "selected"]
    return (pd.concat(tables, ignore_index=True).reindex(columns=columns)  # a column of each ROI model asked for
            .sort_values(["subject", "feature", "banded_share"], ascending=[True, True, False], kind="stable"))


def variance_partition_table(files: FigureInputs, subjects: list[str]) -> pd.DataFrame:
    """Banded ridge's split of the joint R² among its spaces, per subject, over the voxels the joint model
    predicts (q < 0.05): each space's mean share (``r2_<space>``), and the voxels where it is the largest."""
    records = []
    for subject in subjects:
        voxels = encoding_voxels(files, subject, BANDED)
        spaces = [c.removeprefix("r2_") for c in voxels.columns if c.startswith("r2_")]
        significant = voxels[voxels["q"] < Q_THRESHOLD]
        shares = significant[[f"r2_{s}" for s in spaces]].to_numpy()
        largest = np.bincount(shares.argmax(axis=1), minlength=len(spaces)) if len(shares) else np.zeros(len(spaces))
        for index, space in enumerate(spaces):
            records.append({"subject": subject, "space": space, "significant_voxels": len(significant),
                            "mean_r2": float(shares[:, index].mean()) if len(shares) else np.nan,
                            "voxels_largest": int(largest[index])})
    return pd.DataFrame(records)


def plot_variance_partition(table: pd.DataFrame):
    """Stacked bars per subject: each space's mean share of the joint R² over the significant voxels."""
    subjects = list(dict.fromkeys(table["subject"]))
    figure, axis = plt.subplots(figsize=(1.5 + 1.1 * len(subjects), 3.8))
    bottom = np.zeros(len(subjects))
    for space, rows in table.groupby("space", sort=False):
        values = rows.set_index("subject").loc[subjects, "mean_r2"].fillna(0).to_numpy()
        axis.bar(subjects, values, bottom=bottom, label=space)
        bottom += values
    axis.set_ylabel("mean R² share, voxels at q < 0.05")
    axis.set_title("banded ridge: variance partitioning")
    axis.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    return figure
