# Tables over every subject × fold × feature that was asked for: decoding scores (identification; label accuracy
# of the label spaces, a table of its own, written for every run and empty where no space is one), encoding
# summaries, the evaluation of reconstructions and the k-shot curves (decoding.pooled.kshot_minutes).
localrules:
    summarize_decoding,
    summarize_label_decoding,
    summarize_encoding,
    summarize_reconstruction,
    summarize_kshot,


for table, category, inputs in (
    ("decoding", "Decoding", decoding_scores),
    ("label_decoding", "Decoding", decoded("label_scores")),
    ("encoding", "Encoding", encoding_summaries),
    (
        "reconstruction",
        "Reconstruction",
        lambda wildcards: every(LAYOUT.evaluation, list(STUDY.reconstructed), STUDY.reconstructed_folds),
    ),
    ("kshot", "Decoding", lambda wildcards: every(lambda s, f, x: LAYOUT.kshot(s, f, x).scores)),
):

    rule:
        name:
            f"summarize_{table}"
        input:
            inputs,
        output:
            table=str(LAYOUT.summary(SUMMARY_TABLES[table])),
            tsv=reported(LAYOUT.summary(SUMMARY_TABLES[table], ".tsv"), SUMMARY_TABLES[table], category),
        log:
            log_of(f"summarize_{table}"),
        benchmark:
            benchmark_of(f"summarize_{table}")
        conda:
            "../../envs/core.yaml"
        shell:
            JOBS[f"summarize_{table}"].shell
