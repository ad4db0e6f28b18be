"""`--dry-run`: the plan of an llm run from a config.json alone (meta device, no weights), checked
against the published sizes of four of the paper's models under the shipped accelerate configs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from elasticity.llm_group import main
from llm_bridge import plan as planning
from llm_bridge.plan_schedule import resistance_fits, resistance_scored
from llm_bridge.rebound import EXPERIMENT as REBOUND
from llm_bridge.resistance import EXPERIMENT as RESISTANCE

CONFIGS = Path(__file__).parent / "model_configs"
# parameters as the model cards publish them
PUBLISHED = {"llama-2-7b": 6.74e9, "llama-2-13b": 13.0e9, "llama-3-8b": 8.03e9, "gemma-2b": 2.51e9}
SHARDED = ("fsdp", "deepspeed_zero3")


def paper_plan(name: str, experiment=RESISTANCE, **sets) -> dict:
    config = experiment.resolve("paper", sets={"model": str(CONFIGS / name), **sets})
    return planning.make_plan(experiment.name, "paper", config)


@pytest.fixture(scope="module")
def plans() -> dict[str, dict]:
    paper_plan("gemma-2b")  # the first build imports the modelling code: not part of a plan's time
    return {name: paper_plan(name) for name in PUBLISHED}


def state_bytes(row: dict) -> int:
    return row["weights"] + row["gradients"] + row["optimizer"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_parameters_match_the_published_sizes(plans, name):
    assert plans[name]["parameters"] == pytest.approx(PUBLISHED[name], rel=0.01)


@pytest.mark.parametrize("name", PUBLISHED)
def test_sharding_shrinks_the_bytes_per_gpu(plans, name):
    rows = {(r["layout"], r["finetune"], r["precision"]): r for r in plans[name]["memory"]}
    for finetune in ("full", "lora"):
        for precision in ("bf16", "fp32"):
            ddp = rows["ddp", finetune, precision]
            assert state_bytes(ddp) == state_bytes(rows["1 GPU", finetune, precision])  # DDP replicates
            for layout in SHARDED:
                sharded = rows[layout, finetune, precision]
                assert sharded["processes"] == 8
                assert state_bytes(sharded) <= state_bytes(ddp) / 8 + 1
                if finetune == "full" or layout == "fsdp":  # the same bytes, sharded
                    assert state_bytes(sharded) == pytest.approx(state_bytes(ddp) / 8, rel=1e-6)
                assert sharded["total"] < ddp["total"] and sharded["activations"] == ddp["activations"]
    # 16 bytes per trainable parameter in bf16 (fp32 master weights) and fp32; DeepSpeed holds the
    # frozen base of a LoRA model in bf16, autocast keeps it in fp32
    n = plans[name]["parameters"]
    assert state_bytes(rows["ddp", "full", "bf16"]) == 16 * n
    assert rows["deepspeed_zero3", "lora", "bf16"]["weights"] * 2 == rows["fsdp", "lora", "bf16"]["weights"]


def test_each_plan_takes_well_under_a_second(plans):
    for name in PUBLISHED:
        start = time.perf_counter()
        paper_plan(name)
        assert time.perf_counter() - start < 1.0, name


def test_the_shipped_accelerate_configs_and_a_gpu_count():
    placed = {layout.name: layout for layout in planning.layouts()}
    assert placed["ddp"].processes == 8 and not placed["ddp"].shards_optimizer
    assert all(placed[n].shards_parameters and placed[n].shards_gradients and placed[n].shards_optimizer
               for n in SHARDED)
    assert {layout.processes for layout in planning.layouts(processes=4)} == {1, 4}


def test_steps_and_tokens_follow_the_protocols():
    # resistance cpu-micro: 48 SFT examples at 2 per step, then 6 paths of 24 prompts
    config = RESISTANCE.resolve("cpu-micro")
    assert [(f.steps, f.examples) for f in resistance_fits(config)] == [(24, 48), (72, 144)]
    # contrasts at theta0..theta3, 3 answer sets sampled and scored at T = 1 and 0.05, 6 paths x 2
    assert resistance_scored(config) == 4 * 2 * 24 + 3 * 3 * 24 + 12 * 24
    # rebound paper: 8 examples per step; forward to F = 10000, a reverse sweep of 2000 examples from
    # each of the 5 F; with the neutral arm, its forward run and 4 more sweeps (it shares F = 0)
    for neutral, arms, sweeps in ((False, 1, 5), (True, 2, 9)):
        rebound = paper_plan("llama-2-7b", REBOUND, neutral_control=neutral)["schedule"]
        assert rebound["optimizer_steps"] == arms * 1250 + sweeps * 250
        assert rebound["examples"] == arms * 10000 + sweeps * 2000
        assert rebound["max_tokens"] == rebound["examples"] * 512


def test_gradient_checkpointing_and_lora_take_less(plans):
    for row in plans["llama-3-8b"]["memory"]:
        assert row["activations_checkpointed"] < row["activations"]
        assert row["total_checkpointed"] < row["total"]
    full, lora, score = (next(r for r in plans["llama-3-8b"]["time"] if r["work"] == work)
                         for work in ("full", "lora", "score"))
    assert lora["flops"] == pytest.approx(full["flops"] * 2 / 3)
    sched = plans["llama-3-8b"]["schedule"]
    assert score["flops"] == pytest.approx(full["flops"] / 3 * sched["scored_sequences"] / sched["examples"])


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = str(CONFIGS / "gemma-2b")
    assert main(["rebound", "--model", model, "--preset", "paper", "--dry-run", "--json", "--out", "run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["architecture"] == "GemmaForCausalLM" and plan["tied_embeddings"]
    assert main(["resistance", "--model", model, "--dry-run", "--num-processes", "2"]) == 0
    text = capsys.readouterr().out
    assert "deepspeed_zero3     2" in text and "H100 SXM" in text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["not_causal", "no_config", "missing_accelerate", "hub_id"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    folder = tmp_path / "model"
    folder.mkdir()
    if case == "not_causal":
        (folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    model = "owner/name" if case == "hub_id" else str(folder)
    extra = ["--accelerate-config", str(tmp_path / "absent.yaml")] if case == "missing_accelerate" else []
    if case == "missing_accelerate":
        model = str(CONFIGS / "gemma-2b")
    assert main(["resistance", "--model", model, "--dry-run", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err
