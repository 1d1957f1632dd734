# One table of identification accuracy over every subject × fold × feature that was asked for.
localrules:
    summarize,


rule summarize:
    input:
        expand(
            f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/scores.parquet",
            subject=SUBJECTS,
            fold=FOLDS,
            feature=list(FEATURES),
        ),
    output:
        table=f"{RESULTS}/summary/identification.parquet",
        tsv=report(
            f"{RESULTS}/summary/identification.tsv",
            caption="../report/identification.rst",
            category="Decoding",
        ),
    log:
        f"{LOGS}/summarize.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} summarize {input} --out {output.table} --tsv {output.tsv} > {log} 2>&1"
