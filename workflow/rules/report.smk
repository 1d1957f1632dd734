# The figures of `snakemake --report`: identification accuracy beside the paper's Table 2, encoding maps, a voxel
# scatter of two spaces (the paper's Figure 6), an ROI table and variance partitioning; and the listening page:
# each test clip's original beside its retrieved tracks and generated samples, for the `reconstruction.listening`
# subjects and spaces (default: all), on one fold (`test` when reconstructed).
localrules:
    listening_page,
    report_figures,

REPORT = config.get("report", {})
REPORT_FOLD = REPORT.get("fold", "test" if "test" in FOLDS else FOLDS[0])
FIGURES = f"{RESULTS}/report/figures"
# Voxel positions exist for BOLD input (raw or fMRIPrep), not for the authors' arrays.
HAS_POSITIONS = DATASET["input"] != "authors-arrays"
MAP_FEATURES = REPORT.get("maps", list(FEATURES)) if HAS_POSITIONS else []
SCATTER = REPORT.get("scatter", list(FEATURES)[:2] if len(FEATURES) > 1 else [])
ROI_TABLE = HAS_POSITIONS and bool(RESP.get("atlas"))
GLASS_BRAIN = DATASET["input"] == "fmriprep" and DATASET.get("fmriprep", {}).get("space", "").startswith("MNI")

_unknown_report = sorted(set(MAP_FEATURES + SCATTER) - set(FEATURES))
if _unknown_report or REPORT_FOLD not in FOLDS:
    raise ValueError(f"config: report names features {_unknown_report} or a fold ({REPORT_FOLD}) that are not "
                     f"among `features` / `folds`")


def figure_inputs(wildcards):
    encoded = sorted(set(MAP_FEATURES + SCATTER + (list(FEATURES) if ROI_TABLE else [])))
    encoding = [f"{RESULTS}/{s}/{REPORT_FOLD}/{f}/encoding/voxels.parquet" for s in SUBJECTS
                for f in encoded + (["banded"] if BANDED else [])]
    positions = [f"{RESULTS}/{s}/responses/{n}" for s in SUBJECTS for n in ("voxels.parquet", "mask.nii.gz")]
    labels = [RESP["atlas_labels"]] if ROI_TABLE and RESP.get("atlas_labels") else []
    return {"scores": f"{RESULTS}/summary/identification.parquet", "encoding": encoding,
            "positions": positions if HAS_POSITIONS else [], "labels": labels}


def figure_outputs():
    outputs = {
        "identification": report(f"{FIGURES}/identification.svg", caption="../report/figure_identification.rst",
                                 category="Decoding"),
        "table2": report(f"{FIGURES}/table2.html", caption="../report/table2.rst", category="Decoding"),
    }
    if MAP_FEATURES:
        outputs["maps"] = [report(f"{FIGURES}/maps/{f}.png", caption="../report/maps.rst", category="Encoding",
                                  subcategory="Maps", labels={"feature": f}) for f in MAP_FEATURES]
    if SCATTER:
        outputs["scatter"] = report(f"{FIGURES}/voxel_scatter.png", caption="../report/voxel_scatter.rst",
                                    category="Encoding")
    if ROI_TABLE:
        outputs["roi"] = report(f"{FIGURES}/roi.html", caption="../report/roi.rst", category="Encoding")
    if BANDED:
        outputs["variance"] = report(f"{FIGURES}/variance_partitioning.svg",
                                     caption="../report/variance_partitioning.rst", category="Encoding")
        outputs["variance_table"] = report(f"{FIGURES}/variance_partitioning.html",
                                           caption="../report/variance_partitioning.rst", category="Encoding")
    return outputs


rule report_figures:
    input:
        unpack(figure_inputs),
    output:
        **figure_outputs(),
    params:
        extractors=quoted(f"{f}={extractor_of(f)}" for f in FEATURES),
        maps=f"--maps {quoted(MAP_FEATURES)}" if MAP_FEATURES else "",
        scatter=f"--scatter {quoted(SCATTER)}" if SCATTER else "",
        roi=f"--roi-table {quoted(FEATURES)}" if ROI_TABLE else "",
        labels=lambda wildcards, input: f"--atlas-labels {quoted(input.labels[:1])}" if input.labels else "",
        options=" ".join(flag for flag, on in (("--banded", BANDED), ("--glass-brain", GLASS_BRAIN)) if on),
        subjects=quoted(SUBJECTS),
    log:
        f"{LOGS}/report_figures.log",
    benchmark:
        f"{LOGS}/report_figures.benchmark.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} report-figures --scores {input.scores:q} --results {RESULTS:q} --subjects {params.subjects} "
        "--fold {REPORT_FOLD:q} --extractors {params.extractors} {params.maps} {params.scatter} {params.roi} "
        "{params.labels} {params.options} --out {FIGURES:q} 2> {log:q}"

LISTEN_FOLD = "test" if "test" in RECON_FOLDS else RECON_FOLDS[0]
LISTENING = RECON.get("listening", {})
# Within what this run covers (a partial run of other subjects shows the first of them).
LISTEN_SUBJECTS = [s for s in LISTENING.get("subjects", SUBJECTS) if s in SUBJECTS] or SUBJECTS[:1]
LISTEN_FEATURES = [f for f in LISTENING.get("features", RECON_FEATURES) if f in RECON_FEATURES] or list(RECON_FEATURES)
AUDIO_MODEL = RECON.get("audio", {}).get("model", "whole-mask")


def listening_inputs(wildcards):
    folders = [f"{RESULTS}/{s}/{LISTEN_FOLD}/{f}" for s in LISTEN_SUBJECTS for f in LISTEN_FEATURES]
    return {"audio": [f"{d}/retrieval/audio" for d in folders],
            "predictions": [f"{d}/decoding/predictions.parquet" for d in folders],
            "generated": [f"{RESULTS}/{s}/{LISTEN_FOLD}/{f}/generation/{g}" for s in LISTEN_SUBJECTS
                          for f in LISTEN_FEATURES for g in generators_of(f)]}


rule listening_page:
    input:
        unpack(listening_inputs),
    output:
        report(f"{RESULTS}/report/listening.html", caption="../report/listening.rst", category="Listening"),
    params:
        generated=quoted(f"{f}={g}" for f in LISTEN_FEATURES for g in generators_of(f)),
        subjects=quoted(LISTEN_SUBJECTS),
        features=quoted(LISTEN_FEATURES),
    log:
        f"{LOGS}/listening_page.log",
    benchmark:
        f"{LOGS}/listening_page.benchmark.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} listening-page --results {RESULTS:q} --subjects {params.subjects} --fold {LISTEN_FOLD:q} "
        "--features {params.features} --model {AUDIO_MODEL:q} --generated {params.generated} --out {output:q} "
        "2> {log:q}"
