"""The `elasticity llm` commands: lazy imports, presets, bad input, and no transformers needed for help."""

from __future__ import annotations

import json
import subprocess
import sys

from elasticity.llm_group import main

BLOCKED = "import sys; sys.modules['transformers'] = None; sys.modules['peft'] = None; "


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_theory_help_works_without_transformers():
    out = _run(BLOCKED + "from elasticity.cli import main; sys.exit(main(['theory', '--help']))")
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()


def test_llm_config_resolves_without_transformers():
    out = _run(BLOCKED + "from elasticity.cli import main; "
               "sys.exit(main(['llm', 'rebound', '--model', 'gemma3-270m', '--print-config']))")
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)["config"]
    assert config["model"] == "gemma3-270m" and config["adapter"]["finetune"] == "lora"
    assert "torch" not in out.stderr


def test_list_presets(capsys):
    assert main(["rebound", "--list-presets"]) == 0
    text = capsys.readouterr().out
    assert "cpu-micro" in text and "paper" in text


def test_paper_preset_is_the_papers_sft(capsys):
    assert main(["resistance", "--preset", "paper", "--print-config"]) == 0
    c = json.loads(capsys.readouterr().out)["config"]
    opt = c["protocol"]["optimizer"]
    assert (opt["lr"], opt["batch_size"], opt["grad_accum"], c["adapter"]["finetune"], c["seed"],
            c["adapter"]["max_length"]) == (1e-5, 4, 8, "full", 42, 2048)
    assert main(["rebound", "--preset", "paper", "--print-config"]) == 0
    c = json.loads(capsys.readouterr().out)["config"]
    opt = c["probe"]["optimizer"]
    assert (c["adapter"]["max_length"], opt["batch_size"], opt["grad_accum"]) == (512, 1, 8)
