# The listening page of `snakemake --report`: each test clip's original beside its retrieved tracks and
# generated samples, for the `reconstruction.listening` subjects and spaces (default: all), on one fold (`test`
# when reconstructed).
localrules:
    listening_page,

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
        generated=" ".join(f"{f}={g}" for f in LISTEN_FEATURES for g in generators_of(f)),
        subjects=" ".join(LISTEN_SUBJECTS),
        features=" ".join(LISTEN_FEATURES),
    log:
        f"{LOGS}/listening_page.log",
    benchmark:
        f"{LOGS}/listening_page.benchmark.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} listening-page --results {RESULTS} --subjects {params.subjects} --fold {LISTEN_FOLD} "
        "--features {params.features} --model {AUDIO_MODEL} --generated {params.generated} --out {output} 2> {log}"
