"""Trace adapters: each on real rows of the shipped traces, and on bad rows (skipped with a count and reasons)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from placement.replay.traces import load_trace
from placement.spec import spec_from_data, to_job

TRACES = Path(__file__).resolve().parents[1] / "configs" / "traces"
OPENB = TRACES / "alibaba_gpu2023_openb_jobs.csv"
OPENB_HEADER = OPENB.read_text().splitlines()[0]


def by_name(trace):
    return {j.spec["name"]: j for j in trace.jobs}


def test_openb_rows_become_the_specs_a_user_would_write():
    trace = load_trace(OPENB, "openb", TRACES / "alibaba_gpu2023_openb_nodes_raw.csv")
    jobs = by_name(trace)
    assert len(trace.jobs) == 6203 and trace.skipped.count == 897  # 1,052 CPU-only pods are left out, not skipped
    assert all("duration_s is empty" in r for r in trace.skipped.reasons)
    # openb-pod-0001,427061,427061,12902960,12475899,0,1,460,0.46,6.0,12.0,,LS,Running
    pod = jobs["openb-pod-0001"]
    assert pod.submit_s == 427061 and pod.true_hours == pytest.approx(12475899 / 3600)
    spec = pod.spec
    assert spec["resources"] == {"accelerators": {g: 0.46 for g in ("G2", "G3", "T4", "P100", "V100", "V100-32GB",
                                                                     "A10", "A10G")}, "cpus": "6+", "memory": "12+"}
    assert spec["placement"]["priority"] == "high" and spec["placement"]["max_wait"] == "30m"
    job = to_job(spec_from_data(spec, pod.source), "x")  # the engine's own parse
    assert job.demands[0].accelerator_count == 0.46 and job.expected_hours == pytest.approx(12475899 / 3600, rel=1e-6)
    assert [j.submit_s for j in trace.jobs] == sorted(j.submit_s for j in trace.jobs)
    assert sum(n.gpus for n in trace.nodes) == 6212 and len(trace.nodes) == 1523


def test_openb_bad_rows_are_skipped_with_the_line_and_the_column(tmp_path):
    path = tmp_path / "openb_jobs.csv"
    path.write_text("\n".join([OPENB_HEADER,
                               "ok,10,10,100,90,0,2,1000,2.0,8.0,16.0,,BE,Succeeded",
                               "no-duration,10,,,,,1,1000,1.0,8.0,16.0,,LS,Pending",
                               "bad-qos,10,10,100,90,0,1,1000,1.0,8.0,16.0,,Gold,Succeeded",
                               "bad-cpu,10,10,100,90,0,1,1000,1.0,eight,16.0,,LS,Succeeded",
                               "half-gpu-count,10,10,100,90,0,1.5,1000,1.0,8.0,16.0,,LS,Succeeded"]) + "\n")
    trace = load_trace(path, "openb")
    assert [j.spec["name"] for j in trace.jobs] == ["ok"]
    assert trace.jobs[0].spec["placement"]["spot_ok"] is True  # best effort
    assert trace.skipped.count == 4
    assert trace.skipped.reasons == [
        "openb_jobs.csv:3: duration_s is empty: the pod never ran in the trace (final_phase Pending)",
        "openb_jobs.csv:4: qos is 'Gold'; valid: Guaranteed, LS, Burstable, BE",
        "openb_jobs.csv:5: cpu_cores is 'eight', not a number",
        "openb_jobs.csv:6: num_gpu is 1.5; valid: a whole number"]


def test_openb_file_without_its_columns_is_refused_whole(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an openb jobs file: columns .*duration_s"):
        load_trace(path, "openb")


def test_philly_rows_split_gpus_over_machines():
    trace = load_trace(TRACES / "philly_dre_sampled_jobs_first3000.csv", "philly")
    assert len(trace.jobs) == 3000 and trace.skipped.count == 0
    jobs = by_name(trace)
    one = jobs["application_1504131676014_11327"]  # 1 machine, 8 GPUs, 3722.517 min
    assert one.spec["resources"] == {"accelerators": {"P100": 8, "V100": 8}, "cpus": "32+", "memory": "128+"}
    assert one.true_hours == pytest.approx(3722.517 / 60) and one.spec["placement"]["team"] == "vc-6214e9"
    two = jobs["application_1506638472019_4144"]  # 2 machines, 16 GPUs
    assert two.spec["num_nodes"] == 2 and two.spec["resources"]["accelerators"] == {"P100": 8, "V100": 8}
    assert min(j.submit_s for j in trace.jobs) == 0


def test_philly_bad_rows(tmp_path):
    header = (TRACES / "philly_dre_sampled_jobs_first3000.csv").read_text().splitlines()[0]
    path = tmp_path / "philly.csv"
    path.write_text("\n".join([header, "j1,vc,u,Pass,2017-10-03 00:50:36,,,60,0,2,3,,,,,,,,",
                               "j2,vc,u,Pass,yesterday,,,60,0,1,2,,,,,,,,",
                               "j3,vc,u,Pass,2017-10-03 01:00:00,,,90,0,1,2,,,,,,,,"]) + "\n")
    trace = load_trace(path, "philly")
    assert [j.spec["name"] for j in trace.jobs] == ["j3"] and trace.skipped.count == 2
    assert "not a whole number of GPUs per machine" in trace.skipped.reasons[0]
    assert "submit_time is 'yesterday'" in trace.skipped.reasons[1]


def test_dlrm_instances_are_replicas_from_creation_to_deletion():
    trace = load_trace(TRACES / "alibaba_gpu2025_dlrm_gpu_instances.csv", "dlrm")
    assert len(trace.jobs) + trace.skipped.count == 7386
    assert "creation_time is empty" in trace.skipped.reasons[0]
    # instance_7300,HN,app_0,12,12,1,1,25,25,120.0,120.0,680.0,800.0,8,3973.0000000000005,3973.0000000000005,5647.0
    first = next(j for j in trace.jobs if j.source.endswith(":3125"))
    assert first.submit_s == pytest.approx(3973) and first.true_hours == pytest.approx((5647 - 3973) / 3600)
    assert first.spec["name"] == "dlrm-app-0" and first.spec["placement"]["team"] == "serving-0"
    assert first.spec["resources"] == {"accelerators": {"T4": 1, "A10G": 1, "L4": 1}, "cpus": "12+", "memory": "120+"}


def test_generic_jobs_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "jobs.csv"
    csv_path.write_text("submit_s,duration_s,gpus,gpu_types,cpus,memory_gb,priority,team,spot_ok,max_wait,name\n"
                        "0,3600,2,A100|H100,16,64,high,nlp,true,15m,train\n"
                        "60,1800,,,4,8,,,,,\n"
                        "x,3600,1,,,,,,,,\n"
                        "0,3600,1,,,,urgent,,,,\n"
                        "0,3600,1,,,,,,maybe,,\n")
    trace = load_trace(csv_path, "jobs")
    names = by_name(trace)
    assert sorted(names) == ["job-3", "train"]
    train = names["train"].spec
    assert train["resources"] == {"accelerators": {"A100": 2, "H100": 2}, "cpus": "16+", "memory": "64+"}
    assert train["placement"] | {} == {"team": "nlp", "priority": "high", "expected_hours": 1.0,
                                       "tiers": ["onprem", "private", "public"], "spot_ok": True, "max_wait": "15m"}
    cpu = names["job-3"].spec
    assert "accelerators" not in cpu["resources"] and cpu["placement"]["max_wait"] == "2h"  # normal's default
    assert trace.skipped.count == 3
    assert trace.skipped.reasons[0] == "jobs.csv:4: submit_s is 'x', not a number"
    assert "unknown priority 'urgent'" in trace.skipped.reasons[1]
    assert trace.skipped.reasons[2] == "jobs.csv:6: spot_ok is 'maybe'; valid: true/false, 1/0, yes/no"

    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(json.dumps({"submit_s": 5, "duration_s": 7200, "gpus": 0.5, "gpu_types": "T4",
                                 "expected_hours": 3, "spot_ok": False}) + "\n{not json\n[1, 2]\n")
    trace = load_trace(jsonl, "jobs")
    assert len(trace.jobs) == 1 and trace.jobs[0].true_hours == 2.0
    assert trace.jobs[0].spec["placement"]["expected_hours"] == 3.0  # the user's estimate, not the truth
    assert trace.jobs[0].spec["resources"]["accelerators"] == {"T4": 0.5}
    assert trace.skipped.count == 2 and "not JSON" in trace.skipped.reasons[0]
    assert "a JSON list, not an object" in trace.skipped.reasons[1]


def test_unknown_format():
    with pytest.raises(ValueError, match="valid: openb, philly, dlrm, jobs"):
        load_trace(OPENB, "slurm")
