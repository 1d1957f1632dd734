# Tables over every subject × fold × feature that was asked for: decoding scores, encoding summaries and
# the evaluation of reconstructions.
localrules:
    summarize_decoding,
    summarize_encoding,
    summarize_reconstruction,


def every(pattern, features=list(FEATURES)):
    return expand(pattern, subject=SUBJECTS, fold=FOLDS, feature=features)


rule summarize_decoding:
    input:
        every(f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/scores.parquet"),
    output:
        table=f"{RESULTS}/summary/identification.parquet",
        tsv=report(f"{RESULTS}/summary/identification.tsv", caption="../report/identification.rst",
                   category="Decoding"),
    log:
        f"{LOGS}/summarize_decoding.log",
    benchmark:
        f"{LOGS}/summarize_decoding.benchmark.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} summarize {input:q} --out {output.table:q} --tsv {output.tsv:q} > {log:q} 2>&1"


rule summarize_encoding:
    input:
        every(f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/encoding/summary.parquet",
              list(FEATURES) + (["banded"] if BANDED else [])),
    output:
        table=f"{RESULTS}/summary/encoding.parquet",
        tsv=report(f"{RESULTS}/summary/encoding.tsv", caption="../report/encoding.rst", category="Encoding"),
    log:
        f"{LOGS}/summarize_encoding.log",
    benchmark:
        f"{LOGS}/summarize_encoding.benchmark.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} summarize {input:q} --out {output.table:q} --tsv {output.tsv:q} > {log:q} 2>&1"


rule summarize_reconstruction:
    input:
        expand(f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/reconstruction/evaluation.parquet", subject=SUBJECTS,
               fold=RECON_FOLDS, feature=list(RECON_FEATURES)),
    output:
        table=f"{RESULTS}/summary/reconstruction.parquet",
        tsv=report(f"{RESULTS}/summary/reconstruction.tsv", caption="../report/reconstruction.rst",
                   category="Reconstruction"),
    log:
        f"{LOGS}/summarize_reconstruction.log",
    benchmark:
        f"{LOGS}/summarize_reconstruction.benchmark.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} summarize {input:q} --out {output.table:q} --tsv {output.tsv:q} > {log:q} 2>&1"
