# Tables over every subject × fold × feature that was asked for: decoding scores and encoding summaries.
localrules:
    summarize_decoding,
    summarize_encoding,


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
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} summarize {input} --out {output.table} --tsv {output.tsv} > {log} 2>&1"


rule summarize_encoding:
    input:
        every(f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/encoding/summary.parquet",
              list(FEATURES) + (["banded"] if BANDED else [])),
    output:
        table=f"{RESULTS}/summary/encoding.parquet",
        tsv=report(f"{RESULTS}/summary/encoding.tsv", caption="../report/encoding.rst", category="Encoding"),
    log:
        f"{LOGS}/summarize_encoding.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} summarize {input} --out {output.table} --tsv {output.tsv} > {log} 2>&1"
