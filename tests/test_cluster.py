"""b2m cluster-check without a cluster: scontrol's records, the requests of a real dry run of the reduced demo,
and the problems of each request on partitions too small for it. tests/slurm runs it on a real cluster."""

from __future__ import annotations

import pytest
import yaml

from b2m.cluster import (Cluster, Node, Partition, Request, Settings, dry_run, expand_hostlist, gpu_counts,
                         local_rules, minutes, planned_requests, read_cluster, records, request_problems,
                         settings_problems)
from conftest import REPO, reduced_demo

# scontrol show … --oneliner of Slurm 22.05 (the CI cluster of tests/slurm/cluster-up, trimmed)
NODE = ("NodeName=vm Arch=x86_64 CoresPerSocket=2 CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=0.31 AvailableFeatures=(null) "
        "ActiveFeatures=(null) Gres=gpu:ci:1(S:0) NodeAddr=127.0.0.1 NodeHostName=vm Version=22.05.8 OS=Linux 6.1.0 "
        "#1 SMP PREEMPT_DYNAMIC RealMemory=24151 AllocMem=0 FreeMem=20388 Sockets=1 Boards=1 State=IDLE "
        "ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=cpu,gpu")
PARTITIONS = ("PartitionName=cpu AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A "
              "DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED "
              "MaxTime=06:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=vm PriorityJobFactor=1 "
              "PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP "
              "TotalCPUs=2 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED "
              "MaxMemPerNode=UNLIMITED\n"
              "PartitionName=gpu AllowGroups=ALL Default=NO MaxTime=1-00:00:00 MaxCPUsPerNode=UNLIMITED Nodes=vm "
              "State=UP MaxMemPerNode=20000\n")
CONFIG = "Configuration data as of 2026-12-01T15:00:00\nAccountingStorageType   = accounting_storage/slurmdbd\n" \
         "MinJobAge               = 300 sec\nSlurmctldPort           = 6817\n"


def scontrol(*args):
    return {("show", "node", "--oneliner"): NODE, ("show", "partition", "--oneliner"): PARTITIONS,
            ("show", "config"): CONFIG}[args]


def test_reads_partitions_nodes_and_configuration():
    cluster = read_cluster(scontrol)
    assert set(cluster.partitions) == {"cpu", "gpu"} and cluster.default_partition.name == "cpu"
    cpu, gpu = cluster.partitions["cpu"], cluster.partitions["gpu"]
    assert cpu.nodes == (Node("vm", 2, 24151, {"ci": 1}),) and cpu.max_time_min == 360
    assert gpu.max_time_min == 1440 and gpu.node_memory_mb(gpu.nodes[0]) == 20000
    assert (cluster.min_job_age_s, cluster.accounting) == (300, "accounting_storage/slurmdbd")
    assert records("OS=Linux 6.1.0 #1 SMP RealMemory=5")[0] == {"OS": "Linux 6.1.0 #1 SMP", "RealMemory": "5"}


def test_no_reachable_cluster_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol
    with pytest.raises(SystemExit, match="scontrol show node --oneliner: .*fix: run it on a machine of the cluster"):
        read_cluster()
    (tmp_path / "scontrol").write_text("#!/bin/sh\necho 'Unable to contact slurm controller' >&2\nexit 1\n")
    (tmp_path / "scontrol").chmod(0o755)
    with pytest.raises(SystemExit, match="failed: Unable to contact slurm controller; fix: run it where scontrol"):
        read_cluster()


def test_time_limits_gres_and_host_lists():
    assert [minutes(t) for t in ("1-00:00:00", "2-12:30:00", "04:00:00", "30:00", "45")] == [1440, 3630, 240, 30, 45]
    assert minutes("UNLIMITED") == float("inf")
    assert gpu_counts("gpu:a100:4(S:0-1),gpu:2,tmpdisk:100") == {"a100": 4, "": 2} and gpu_counts("(null)") == {}
    assert expand_hostlist("node[01-03,07],gpu1") == ["node01", "node02", "node03", "node07", "gpu1"]


def test_requests_of_a_dry_run_at_the_first_and_last_attempt(tmp_path):
    """The reduced demo's jobs through profiles/slurm with its GPU layer: local rules and `all` left out, CPUs
    from the rules' threads, memory × attempt, runtime min(240 × attempt, 1440)."""
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(reduced_demo()))
    args = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
            str(tmp_path / "run.yaml")]
    profiles = [REPO / "profiles/slurm", REPO / "profiles/slurm-gpu"]
    first, last = (planned_requests(dry_run(profiles, attempt, args), attempt, local_rules()) for attempt in (1, 3))
    rules = {r.rule for r in first}
    assert rules == {"clean_bold", "window_responses", "features", "factorise", "decode", "encode", "encode_banded",
                     "list_corpus_chunk", "index_corpus_chunk", "index_corpus", "fingerprint_corpus_chunk", "find_duplicates", "retrieve",
                     "evaluate_reconstruction"}
    assert not rules & local_rules() and {"simulate", "summarize_decoding", "listening_page"} <= local_rules()
    decode = Request("decode", 1, 1, 10000, 240, 1, "CHANGE_ME_gpu_model", "CHANGE_ME_gpu_partition",
                     "CHANGE_ME_account")
    assert first[decode] == 2  # acoustic and genre
    assert last[Request("decode", 3, 1, 30000, 720, 1, "CHANGE_ME_gpu_model", "CHANGE_ME_gpu_partition",
                        "CHANGE_ME_account")] == 2
    assert {(r.cpus, r.memory_mb, r.gpus, r.partition) for r in first if r.rule == "clean_bold"} == {
        (1, 3000, 0, "CHANGE_ME_partition")}


SETTINGS = Settings(retries=2, status_command="squeue", init_status_interval_s=15)


def small_cluster(**partition) -> Cluster:
    node = Node("n1", 2, 20000, {})
    values = dict(name="cpu", up=True, default=True, max_time_min=1440, max_cpus_per_node=float("inf"),
                  max_memory_mb=float("inf"), nodes=(node,)) | partition
    return Cluster({"cpu": Partition(**values)}, 300, "accounting_storage/slurmdbd")


def test_each_request_that_cannot_start_is_named_with_its_fix():
    cluster = small_cluster(max_time_min=120)
    assert request_problems(cluster, Request("decode", 1, 2, 10000, 120, 0, "", "cpu", "lab"), SETTINGS) == []
    [cpus, memory] = request_problems(cluster, Request("index_corpus", 1, 8, 32000, 60, 0, "", "", "lab"), SETTINGS)
    assert cpus.startswith("index_corpus (attempt 1 of 3): asks 8 CPUs, the largest node of cpu has 2; "
                           "fix: max-threads: 2")
    assert "asks 32000 MB, the largest node of cpu has 20000 MB; fix: mem_mb of index_corpus" in memory
    [retry] = request_problems(cluster, Request("encode", 3, 2, 30000, 120, 0, "", "cpu", "lab"), SETTINGS)
    assert retry.endswith("fix: retries: 1 in the profile")  # 10000 × 2 fits, × 3 does not
    [time] = request_problems(cluster, Request("encode", 2, 2, 20000, 480, 0, "", "cpu", "lab"), SETTINGS)
    assert ("asks 480 min, partition cpu allows 120; fix: the cap of runtime in the profile, "
            "min(… * attempt, 120)") in time
    [gpu] = request_problems(cluster, Request("decode", 1, 2, 10000, 60, 1, "a100", "cpu", "lab"), SETTINGS)
    assert "asks 1 GPU of type a100, partition cpu has 0 (GPU types: none)" in gpu and "profiles/slurm-gpu" in gpu
    [missing] = request_problems(cluster, Request("decode", 1, 2, 10000, 60, 0, "", "CHANGE_ME_partition", ""),
                                 SETTINGS)
    assert "partition 'CHANGE_ME_partition' does not exist (partitions: cpu)" in missing


def test_settings_that_would_hang_or_stop_the_workflow():
    cluster = small_cluster()
    assert settings_problems(cluster, SETTINGS, {"lab"}) == []
    [status] = settings_problems(cluster, Settings(**vars(SETTINGS) | {"status_command": "sacct"}), {"lab"})
    assert "CANCELLED by <uid>" in status and "slurm-status-command: squeue" in status
    young = Cluster(cluster.partitions, 30, cluster.accounting)
    [age] = settings_problems(young, SETTINGS, {"lab"})
    assert "MinJobAge is 30 s" in age and "slurm-init-seconds-before-status-checks: 10" in age
    no_accounting = Cluster(cluster.partitions, 300, "accounting_storage/none")
    assert settings_problems(no_accounting, SETTINGS, {"lab"}) == []  # the plugin cannot check it, and says so
    [guess] = settings_problems(no_accounting, SETTINGS, set())
    assert "sacct: invalid option -- '1'" in guess and "fix: slurm_account" in guess


def test_settings_of_layered_profiles_take_the_later_value(tmp_path):
    for name, values in (("base", {"retries": 2, "slurm-status-command": "squeue"}), ("layer", {"retries": 1})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(values))
    settings = Settings.of_profiles([tmp_path / "base", tmp_path / "layer"])
    assert (settings.retries, settings.status_command, settings.init_status_interval_s) == (1, "squeue", 40)
    shipped = Settings.of_profiles([REPO / "profiles/slurm", REPO / "profiles/slurm-gpu"])
    assert (shipped.retries, shipped.status_command, shipped.init_status_interval_s) == (2, "squeue", 15)
