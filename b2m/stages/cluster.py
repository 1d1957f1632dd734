"""The cluster's pre-flight check: ``b2m cluster-check``."""

from __future__ import annotations

from pathlib import Path

from b2m.stages import stage


def _cluster_arguments(parser) -> None:
    parser.add_argument("--profile", type=Path, action="append", required=True,
                        help="a Snakemake profile folder, as given to snakemake (repeat for layers: profiles/slurm, "
                             "then profiles/slurm-gpu)")
    parser.add_argument("snakemake_args", nargs="*", metavar="SNAKEMAKE_ARG",
                        help="further arguments of the dry run, after --, e.g. -- --configfile config/ds003720.yaml")


@stage("cluster-check", "name every job of the DAG that could never start on this SLURM cluster, and the fix",
       arguments=_cluster_arguments)
def cluster_check(args, options) -> None:
    from b2m.cluster import cluster_check as check

    if check(args.profile, args.snakemake_args):
        raise SystemExit(1)
