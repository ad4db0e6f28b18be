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
               "sys.exit(main(['llm', 'rebound', '--model', 'gemma3-270m', '--print-config', '--json']))")
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)["config"]
    assert config["model"] == "gemma3-270m" and config["adapter"]["finetune"] == "lora"
    assert "torch" not in out.stderr


def test_list_presets(capsys):
    assert main(["rebound", "--list-presets"]) == 0
    text = capsys.readouterr().out
    assert "cpu-micro" in text and "paper" in text


def test_paper_preset_is_the_papers_sft(capsys):
    assert main(["resistance", "--preset", "paper", "--print-config", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)["config"]
    opt = c["protocol"]["optimizer"]
    assert (opt["lr"], opt["batch_size"], opt["grad_accum"], c["adapter"]["finetune"], c["seed"],
            c["adapter"]["max_length"]) == (1e-5, 4, 8, "full", 42, 2048)
    assert main(["rebound", "--preset", "paper", "--print-config", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)["config"]
    opt = c["probe"]["optimizer"]
    assert (c["adapter"]["max_length"], opt["batch_size"], opt["grad_accum"]) == (512, 1, 8)


def test_remote_code_only_from_the_command_line(capsys, tmp_path):
    """trust_remote_code runs a model folder's own Python: a shared config file or a --set is refused
    with one line and exit 2; only --trust-remote-code turns it on."""
    shared = tmp_path / "shared.toml"
    shared.write_text("trust_remote_code = true\n")
    for command in ("rebound", "resistance", "pareto"):
        for bad in (["--config", str(shared)], ["--set", "trust_remote_code=true"], ["--set", "trust-remote-code=1"]):
            assert main([command, *bad, "--print-config"]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "--trust-remote-code" in err, err
        assert main([command, "--print-config", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["config"]["trust_remote_code"] is False
        assert main([command, "--trust-remote-code", "--print-config", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["config"]["trust_remote_code"] is True
        # the printed TOML leaves it out (a file cannot turn it on) and says to give the flag
        assert main([command, "--trust-remote-code", "--print-config"]) == 0
        printed = capsys.readouterr().out
        assert "add --trust-remote-code" in printed and "trust_remote_code = true" not in printed


def test_bad_data_files_are_one_line_errors_and_leave_the_folder_free(capsys, tmp_path, tiny_folder):
    """A binary data file or a JSONL line that is not an object: exit 2, one line, and nothing left in
    --out, so the corrected command can use the same folder (it used to find a config.json there and
    refuse it as another run's)."""
    (tmp_path / "binary.jsonl").write_bytes(b"\x00\xff\xfe")
    (tmp_path / "list.jsonl").write_text("[1, 2, 3]\n")
    out = tmp_path / "run"
    for name in ("binary.jsonl", "list.jsonl"):
        assert main(["rebound", "--model", str(tiny_folder), "--set", f"data={tmp_path / name}",
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        print(err)
        assert len(err.splitlines()) == 1 and "config hash" not in err
        assert not out.exists()
