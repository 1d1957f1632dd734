"""The pre-flight check of a SLURM cluster (``b2m cluster-check``): every job a dry run of the DAG plans, at its
first and at its last attempt, against the limits and nodes of its partition (``scontrol``), and the profile's
status settings against the cluster's configuration. Each problem names the rule and the setting that fixes it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

# A dry run on the login node would cap the rules' threads at its own cores; cluster jobs are capped only by
# the profile's max-threads.
UNCAPPED_CORES = "1048576"
RULES = Path(__file__).resolve().parents[1] / "workflow" / "rules"


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: dict[str, int]  # GPU type ("" when untyped) → count


@dataclass(frozen=True)
class Partition:
    name: str
    up: bool
    default: bool
    max_time_min: float  # inf when UNLIMITED
    max_cpus_per_node: float
    max_memory_mb: float  # MaxMemPerNode; inf when UNLIMITED
    nodes: tuple[Node, ...]

    def node_memory_mb(self, node: Node) -> float:
        return min(node.memory_mb, self.max_memory_mb)

    def node_cpus(self, node: Node) -> float:
        return min(node.cpus, self.max_cpus_per_node)


@dataclass(frozen=True)
class Cluster:
    partitions: dict[str, Partition]
    min_job_age_s: int | None
    accounting: str  # AccountingStorageType, e.g. accounting_storage/slurmdbd or accounting_storage/none

    @property
    def default_partition(self) -> Partition | None:
        return next((p for p in self.partitions.values() if p.default), None)


@dataclass(frozen=True)
class Request:
    """What one rule's jobs ask SLURM for at one attempt (the plugin's rules: CPUs are cpus_per_task, else the
    job's threads)."""

    rule: str
    attempt: int
    cpus: int
    memory_mb: int
    runtime_min: int
    gpus: int
    gpu_model: str
    partition: str  # "" for the cluster's default
    account: str


@dataclass(frozen=True)
class Settings:
    """The executor settings of the profiles named, the later winning (as Snakemake reads them)."""

    retries: int
    status_command: str
    init_status_interval_s: int

    @classmethod
    def of_profiles(cls, profiles: list[Path]) -> Settings:
        values: dict = {}
        for profile in profiles:
            values.update(yaml.safe_load((profile / "config.yaml").read_text()) or {})
        return cls(retries=int(values.get("retries", 0)),
                   status_command=str(values.get("slurm-status-command", "sacct")),
                   init_status_interval_s=int(values.get("slurm-init-seconds-before-status-checks", 40)))


def records(text: str) -> list[dict[str, str]]:
    """``scontrol show … --oneliner`` output: one ``Key=Value …`` record a line (values may hold spaces)."""
    return [dict(re.findall(r"(\S+?)=(.*?)(?= \S+?=|$)", line.strip())) for line in text.splitlines()
            if line.strip()]


def minutes(limit: str) -> float:
    """A SLURM time limit (``UNLIMITED``, ``days-hh:mm:ss``, ``hh:mm:ss``, ``mm:ss``, ``mm``) in minutes."""
    if limit in ("UNLIMITED", "INFINITE", "NONE"):
        return float("inf")
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    hours, mins, secs = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + hours * 60 + mins + secs / 60


def gpu_counts(gres: str) -> dict[str, int]:
    """``gpu:a100:4(S:0),gpu:2`` → {"a100": 4, "": 2}; other GRES are ignored."""
    counts: Counter = Counter()
    for item in gres.split(","):
        fields = re.sub(r"\(.*?\)", "", item).split(":")
        if fields[0] == "gpu" and len(fields) >= 2:
            counts["" if len(fields) == 2 else fields[1]] += int(fields[-1])
    return dict(counts)


def limit(value: str | None) -> float:
    return float("inf") if value in (None, "", "UNLIMITED", "0") else float(value)


def scontrol_output(*args: str) -> str:
    """``scontrol *args``'s output; one clear error when there is no scontrol or no cluster answers it."""
    try:
        done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired) as err:
        raise SystemExit(f"b2m cluster-check: scontrol {' '.join(args)}: {err}; fix: run it on a machine of the "
                         "cluster (a login node) with Slurm's client commands")
    if done.returncode != 0:
        raise SystemExit(f"b2m cluster-check: scontrol {' '.join(args)} failed: {done.stderr.strip()}; fix: run it "
                         "where scontrol reaches the cluster's slurmctld (a login node; SLURM_CONF if the "
                         "configuration is elsewhere)")
    return done.stdout


def read_cluster(scontrol=scontrol_output) -> Cluster:
    """The partitions, their nodes and the configuration of the cluster ``scontrol`` talks to."""
    nodes = {r["NodeName"]: Node(r["NodeName"], int(r["CPUTot"]), int(r["RealMemory"]), gpu_counts(r.get("Gres", "")))
             for r in records(scontrol("show", "node", "--oneliner"))}
    partitions = {}
    for r in records(scontrol("show", "partition", "--oneliner")):
        members = [nodes[n] for n in expand_hostlist(r.get("Nodes", "")) if n in nodes]
        partitions[r["PartitionName"]] = Partition(
            r["PartitionName"], r.get("State") == "UP", r.get("Default") == "YES",
            minutes(r.get("MaxTime", "UNLIMITED")), limit(r.get("MaxCPUsPerNode")), limit(r.get("MaxMemPerNode")),
            tuple(members))
    config = dict(re.findall(r"^(\w+)\s*=\s*(.*?)\s*$", scontrol("show", "config"), re.MULTILINE))
    age = re.match(r"\d+", config.get("MinJobAge", ""))
    return Cluster(partitions, int(age.group()) if age else None, config.get("AccountingStorageType", ""))


def expand_hostlist(hostlist: str) -> list[str]:
    """``node[01-03,07],gpu1`` → node01, node02, node03, node07, gpu1 (``scontrol show hostnames`` in Python)."""
    names = []
    for prefix, ranges, plain in re.findall(r"([^,\[]+)\[([^\]]+)\]|([^,\[\]]+)", hostlist):
        if plain:
            names.append(plain)
            continue
        for span in ranges.split(","):
            first, _, last = span.partition("-")
            names += [f"{prefix}{i:0{len(first)}d}" for i in range(int(first), int(last or first) + 1)]
    return names


def local_rules(rules: Path = RULES) -> set[str]:
    """The rules the workflow's ``localrules:`` directives name: they run beside Snakemake, not as SLURM jobs (a
    dry run does not say which)."""
    text = "".join(path.read_text() for path in rules.glob("*.smk"))
    blocks = re.findall(r"localrules:\s*\n((?:[ \t]+\w+,[ \t]*\n)+)", text)
    return {name for block in blocks for name in re.findall(r"\w+", block)}


def planned_requests(dry_run_output: str, attempt: int, local: set[str]) -> Counter:
    """Request → number of jobs, from a ``snakemake -n`` output; local rules and jobs that run nothing (``all``)
    are left out."""
    requests: Counter = Counter()
    job: dict | None = None
    for line in dry_run_output.splitlines() + [""]:
        match = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if match or not line.startswith(" ") and job:
            if job and job["rule"] not in local and job["output"]:
                requests[request_of(job, attempt)] += 1
            job = {"rule": match.group(1), "output": False, "threads": 1, "resources": {}} if match else None
        elif job and line.strip().startswith("output:"):
            job["output"] = True
        elif job and line.strip().startswith("threads:"):
            job["threads"] = int(line.split(":", 1)[1])
        elif job and line.strip().startswith("resources:"):
            job["resources"] = dict(item.split("=", 1) for item in line.split(":", 1)[1].strip().split(", ")
                                    if "=" in item)
    return requests


def request_of(job: dict, attempt: int) -> Request:
    res = job["resources"]
    cpus = int(res.get("cpus_per_task", job["threads"]))
    return Request(job["rule"], attempt, max(cpus, 1), int(float(res.get("mem_mb", 0))),
                   int(float(res.get("runtime", 0))), int(res.get("gpu", 0)), res.get("gpu_model", ""),
                   res.get("slurm_partition", ""), res.get("slurm_account", ""))


def dry_run(profiles: list[Path], attempt: int, snakemake_args: list[str]) -> str:
    command = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", UNCAPPED_CORES, "--attempt",
               str(attempt), *[arg for p in profiles for arg in ("--profile", str(p))], *snakemake_args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"b2m cluster-check: the dry run failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    return result.stdout


def request_problems(cluster: Cluster, request: Request, settings: Settings) -> list[str]:
    """Why ``request`` can never start on its partition, each with the setting that fixes it."""
    where = f"{request.rule} (attempt {request.attempt} of {settings.retries + 1})"
    partition = cluster.partitions.get(request.partition) if request.partition else cluster.default_partition
    if partition is None:
        return [f"{where}: partition {request.partition or '(default)'!r} does not exist (partitions: "
                f"{', '.join(cluster.partitions)}); fix: slurm_partition in the profile"]
    problems = [] if partition.up else [f"{where}: partition {partition.name} is not UP"]
    if request.runtime_min > partition.max_time_min:
        problems.append(f"{where}: asks {request.runtime_min} min, partition {partition.name} allows "
                        f"{partition.max_time_min:.0f}; fix: the cap of runtime in the profile, "
                        f"min(… * attempt, {partition.max_time_min:.0f})")
    nodes = partition.nodes
    cpus = max((partition.node_cpus(n) for n in nodes), default=0)
    if request.cpus > cpus:
        problems.append(f"{where}: asks {request.cpus} CPUs, the largest node of {partition.name} has {cpus:.0f}; "
                        f"fix: max-threads: {cpus:.0f} (or set-threads for {request.rule}) in the profile")
    memory = max((partition.node_memory_mb(n) for n in nodes), default=0)
    if request.memory_mb > memory:
        attempts_that_fit = int(memory // (request.memory_mb / request.attempt))  # memory grows as base × attempt
        fix = (f"retries: {attempts_that_fit - 1} in the profile" if attempts_that_fit >= 1
               else f"mem_mb of {request.rule} in set-resources, or a partition with larger nodes")
        problems.append(f"{where}: asks {request.memory_mb} MB, the largest node of {partition.name} has "
                        f"{memory:.0f} MB; fix: {fix}")
    if request.gpus:
        have = max((n.gpus.get(request.gpu_model, 0) if request.gpu_model else sum(n.gpus.values())
                    for n in nodes), default=0)
        if have < request.gpus:
            types = sorted({t for n in nodes for t in n.gpus if t}) or ["none"]
            kind = f" of type {request.gpu_model}" if request.gpu_model else ""
            problems.append(f"{where}: asks {request.gpus} GPU{kind}, partition {partition.name} has {have} "
                            f"(GPU types: {', '.join(types)}); fix: "
                            "slurm_partition and gpu_model in profiles/slurm-gpu, or leave that layer out on a "
                            "CPU-only cluster")
    elif not problems and not any(partition.node_cpus(n) >= request.cpus and partition.node_memory_mb(n)
                                  >= request.memory_mb for n in nodes):
        problems.append(f"{where}: no single node of {partition.name} has both {request.cpus} CPUs and "
                        f"{request.memory_mb} MB; fix: mem_mb or threads of {request.rule}")
    return problems


def settings_problems(cluster: Cluster, settings: Settings, accounts: set[str]) -> list[str]:
    """The profile's status and account settings that would hang the workflow or puzzle its user on this
    cluster."""
    problems = []
    threshold = 3 * settings.init_status_interval_s
    if settings.status_command != "squeue":
        problems.append(f"slurm-status-command is {settings.status_command}: the plugin's sacct path never "
                        "matches 'CANCELLED by <uid>', so a cancelled job hangs the workflow; fix: "
                        "slurm-status-command: squeue")
    elif cluster.min_job_age_s is not None and cluster.min_job_age_s < threshold:
        problems.append(f"MinJobAge is {cluster.min_job_age_s} s, under 3 × slurm-init-seconds-before-status-checks "
                        f"({threshold} s): the plugin then falls back to sacct, where a cancelled job hangs; fix: "
                        f"slurm-init-seconds-before-status-checks: {max(cluster.min_job_age_s // 3, 1)}")
    if not accounts:
        problems.append("no slurm_account: the plugin then guesses one with a broken sacct call (\"sacct: invalid "
                        "option -- '1'\"; slurm-no-account has no effect in plugin 2.8.0); fix: slurm_account in "
                        "default-resources (without accounting any name is accepted, unchecked)")
    return problems


def report(requests: Counter, problems: list[str]) -> str:
    """A table of what each rule asks at each attempt, then the problems (or that there are none)."""
    lines = ["rule\tattempt\tjobs\tCPUs\tmem_mb\truntime_min\tGPUs\tpartition"]
    for r in sorted(requests, key=lambda r: (r.rule, r.attempt, r.memory_mb)):
        gpus = f"{r.gpus} {r.gpu_model}".strip() if r.gpus else "0"
        lines.append(f"{r.rule}\t{r.attempt}\t{requests[r]}\t{r.cpus}\t{r.memory_mb}\t{r.runtime_min}\t{gpus}\t"
                     f"{r.partition or '(default)'}")
    if problems:
        lines += ["", f"{len(problems)} problem(s): these jobs could never start, or the workflow would hang:"]
        lines += [f"- {p}" for p in problems]
    else:
        lines += ["", "every job can start on this cluster, at every attempt"]
    return "\n".join(lines)


def cluster_check(profiles: list[Path], snakemake_args: list[str], cluster: Cluster | None = None) -> list[str]:
    """Print the requests and problems of the DAG on the cluster; returns the problems."""
    settings = Settings.of_profiles(profiles)
    cluster = cluster or read_cluster()
    requests: Counter = Counter()
    local = local_rules()
    for attempt in sorted({1, settings.retries + 1}):
        requests.update(planned_requests(dry_run(profiles, attempt, snakemake_args), attempt, local))
    problems = [p for r in requests for p in request_problems(cluster, r, settings)]
    problems += settings_problems(cluster, settings, {r.account for r in requests if r.account})
    print(report(requests, problems))
    return problems
