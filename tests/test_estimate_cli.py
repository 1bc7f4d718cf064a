"""`placement estimate SPEC`: the GPU memory need term by term, the policy's margin, and the GPUs that fit (the
shipped catalogs and inventory); bad facts named by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from placement.cli import app
from placement.memory_estimate import ModelFacts, estimate

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ["--catalog", str(ROOT / "configs" / "catalogs")]  # the shipped snapshot, never SkyPilot's own
SPEC = """name: vit-l-finetune
resources:
  accelerators: {L4: 1, A100: 1}
run: python train.py
placement:
  gpu_memory: {model: vit-l-16, batch_size: 96, precision: bf16, optimizer: adamw}
"""


def run(*args: str):
    return CliRunner().invoke(app, ["estimate", *args, *CATALOGS], env={"COLUMNS": "200"})


def test_estimate_prints_the_terms_the_margin_and_the_gpus_that_fit(tmp_path):
    path = tmp_path / "vit.yaml"
    path.write_text(SPEC)
    figures = estimate(ModelFacts(model="vit-l-16", batch_size=96, precision="bf16", optimizer="adamw"))
    result = run(str(path))
    assert result.exit_code == 0, result.output
    for term in ("weights", "optimizer (state, master weights)", "activations (forward pass)", "gradients (step)",
                 "optimizer step temporaries (step)", "allocator reserve", "CUDA context"):
        assert term in result.output
    [line] = [x for x in result.output.splitlines() if "with the policy's 10% margin" in x]
    assert line.rstrip(" │").endswith(f"{figures.required_gb(0.1):g}")
    fits = result.output.split("fits: ")[1]
    assert "A100 (40 GB) *" in fits and "L4 (24 GB)" not in fits  # 30.7 GB needed: the L4 it asks for is out

    answer = json.loads(run(str(path), "--json").output)
    [job] = answer
    assert job["needed_gb"] == figures.required_gb(0.1) and job["margin"] == 0.1
    assert job["estimate_gb"] == round(figures.total_gb, 3)
    assert job["terms_gb"]["allocator reserve"] == round(figures.reserve_gb, 3)
    assert {g["gpu"] for g in job["gpus"] if g["fits"]} == set(job["fits"])
    assert all(g["memory_gb"] >= job["needed_gb"] for g in job["gpus"] if g["fits"])
    assert all(g["memory_gb"] < job["needed_gb"] for g in job["gpus"] if not g["fits"])
    assert {"L4", "T4", "A100", "H100"} <= {g["gpu"] for g in job["gpus"]}


def test_the_policys_margin_moves_the_need(tmp_path):
    path = tmp_path / "vit.yaml"
    path.write_text(SPEC)
    policy = tmp_path / "wide.yaml"
    policy.write_text("name: wide\nmemory: {margin: 0.5}\n")
    [job] = json.loads(run(str(path), "--json", "--policy", str(policy)).output)
    figures = estimate(ModelFacts(model="vit-l-16", batch_size=96, precision="bf16", optimizer="adamw"))
    assert job["needed_gb"] == figures.required_gb(0.5) > figures.required_gb(0.1)


def test_a_need_given_outright_and_a_spec_without_one(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text("name: given\nresources: {accelerators: L4:1}\nrun: x\nplacement: {gpu_memory: {per_gpu_gb: 20}}\n"
                    "---\nname: bare\nresources: {accelerators: L4:1}\nrun: x\n")
    given, bare = json.loads(run(str(path), "--json").output)
    assert given["needed_gb"] == 20 and given["given_gb"] == 20 and "L4" in given["fits"]  # no margin on it
    assert bare == {"job": "bare", "needed_gb": None}


def test_bad_facts_are_named_by_file_line_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("vit-l-16", "vit-z-99"))
    result = run(str(path))
    assert result.exit_code == 1
    assert "bad.yaml:6" in result.output and "placement.gpu_memory.model" in result.output
    assert "vit-l-16" in result.output  # what is valid
