"""The `elasticity` dispatcher: help at every level, lazy imports, exit codes, clean --json."""

import argparse
import dataclasses
import json
import subprocess
import sys
import tomllib

import pytest

from elasticity import registry
from elasticity.cli import GROUPS, main
from elasticity.command import add_experiment_arguments, group_main, run_from_args
from harness.experiment import load_object
from tests.foundation.test_runs import MICRO


def _micro_command(argv, prog):
    parser = argparse.ArgumentParser(prog=prog)
    add_experiment_arguments(parser, MICRO)
    return run_from_args(MICRO, parser.parse_args(argv))


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_top_level_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in GROUPS:
        assert f"  {name} " in out


@pytest.mark.parametrize("group", ["theory", "toy", "figures", "reproduce"])
def test_group_help_without_transformers(group):
    # CI has transformers installed, so block the import to prove the laziness. theory/ must not
    # even load torch (blocking torch itself would break scipy's own optional-torch probe).
    proc = _python(
        "import sys\nfor m in ['transformers', 'peft', 'accelerate']: sys.modules[m] = None\n"
        f"from elasticity.cli import main\ncode = main(['{group}', '--help'])\n"
        "print('TORCH LOADED' if 'torch' in sys.modules else 'no torch')\nsys.exit(code)"
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    if group == "theory":
        assert "no torch" in proc.stdout


def test_unknown_command_exits_2(capsys):
    assert main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(registry.EXPERIMENTS))
def test_bad_set_exits_2_with_one_line(name, capsys):
    group, short = name.split(".")
    code = main([group, short, "--set", "nonsense=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "nonsense" in err and "valid keys:" in err


@pytest.mark.parametrize("name", sorted(registry.EXPERIMENTS))
def test_presets_listed_and_config_printed(name, capsys):
    experiment = registry.load(name)
    if isinstance(experiment.draw, str):
        assert callable(load_object(experiment.draw)), experiment.draw
    group, short = name.split(".")
    assert main([group, short, "--list-presets"]) == 0
    listing = capsys.readouterr().out
    for preset in experiment.presets:
        assert preset in listing
    assert main([group, short, "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"# {name}, preset {experiment.default_preset}, config hash ")
    assert set(tomllib.loads(printed)) == {"config"}
    assert main([group, short, "--print-config", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["experiment"] == name and printed["preset"] == experiment.default_preset


def test_json_is_clean_stdout_and_resume_rules(tmp_path, capsys):
    out = tmp_path / "run"
    commands = {"micro": ("micro", _micro_command)}
    assert group_main("demo", "", ["micro", "--json", "--out", str(out)], commands) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["experiment"] == "demo.micro"
    assert "run folder" in captured.err
    assert group_main("demo", "", ["micro", "--out", str(out)], commands) == 0
    assert group_main("demo", "", ["micro", "--out", str(out), "--set", "n=7"], commands) == 2
    assert "config hash" in capsys.readouterr().err


def test_run_log_and_verbosity(tmp_path, capsys):
    """Every run folder keeps its messages in run.log, appended on resume; -q leaves stderr to warnings
    (run.log still gets the progress lines), -v adds debug lines; stdout stays the summary."""
    out = tmp_path / "run"
    commands = {"micro": ("micro", _micro_command)}
    assert group_main("demo", "", ["micro", "--out", str(out), "-q", "--json"], commands) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["experiment"] == "demo.micro"
    assert "INFO run folder: " in (out / "run.log").read_text()
    assert group_main("demo", "", ["micro", "--out", str(out), "-v"], commands) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"run folder {out}", f"run folder: {out} (resumed, {err[-1].split(', ')[-1]}"], err
    log = [line.split(" ", 3)[2:] for line in (out / "run.log").read_text().splitlines()]
    assert [level for level, _ in log] == ["INFO", "INFO", "INFO", "DEBUG", "INFO"], log
    assert log[0][1].startswith("starting demo.micro, config hash") and log[2][1].startswith("resuming")
    assert main(["theory", "simulate", "-q", "-v"]) == 2  # one or the other
    assert "not allowed with" in capsys.readouterr().err


def test_quiet_turns_progress_bars_off():
    from harness import logs

    try:
        logs.configure(-1)
        assert logs.progress(range(3)).disable
        logs.configure(0)
        assert not logs.progress(range(3)).disable and logs.progress(range(3), disable=True).disable
    finally:
        logs.configure(0)


def test_a_refused_config_leaves_no_run_log(tmp_path):
    """Bad input found inside a new run, before any work, leaves no folder and no run.log behind."""
    from harness.errors import ConfigError
    from harness.runner import execute
    from tests.foundation.test_runs import Micro

    def refuse(config, run):
        raise ConfigError("refused")

    with pytest.raises(ConfigError):
        execute(dataclasses.replace(MICRO, run=refuse), Micro(), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    execute(MICRO, Micro(), out=tmp_path / "run")
    with pytest.raises(ConfigError):  # a resumed folder keeps its log, which says why the run stopped
        execute(dataclasses.replace(MICRO, run=refuse), Micro(), out=tmp_path / "run")
    assert "ERROR stopped by ConfigError: refused" in (tmp_path / "run" / "run.log").read_text()


def test_help_shows_presets_defaults_and_only_the_flags_an_experiment_has(capsys):
    assert main(["toy", "rebound", "--help"]) == 0
    toy = capsys.readouterr().out
    assert "quick (~" in toy and "--quick" in toy and "--full" in toy and "(default: " in toy
    assert main(["llm", "rebound", "--help"]) == 0
    llm = " ".join(capsys.readouterr().out.split())  # help wraps lines
    assert "cpu-micro (~" in llm and "--quick" not in llm and "--full" not in llm
    assert "{sentiment,safety,instruction}" in llm and "(default: sentiment in preset cpu-micro)" in llm
    assert main(["llm", "rebound", "--quick"]) == 2
    assert "unrecognized arguments: --quick" in capsys.readouterr().err


def test_ci_runs_the_readme_test_command():
    from harness.runs import repo_root

    readme = (repo_root() / "README.md").read_text()
    ci = (repo_root() / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_reproduce_lists_its_presets_and_the_experiment_presets_they_run(capsys):
    """`reproduce --list-presets`: quick, reduced and full with their runtimes; reduced runs an
    experiment's full preset where it has no reduced one."""
    from elasticity import reproduce

    assert main(["reproduce", "--list-presets"]) == 0
    out = capsys.readouterr().out
    print(out)
    for name in reproduce.PRESETS:
        assert out.count(f"\n{name} ") + out.startswith(f"{name} ") == 1
    for name in reproduce.EXPERIMENTS:
        experiment = registry.load(name)
        expected = "full" if "reduced" not in experiment.presets else "reduced"
        assert reproduce.experiment_preset(experiment, "reduced") == expected
        assert reproduce.experiment_preset(experiment, "full") == "full"
    for name in reproduce.PRESETS:  # each preset has its alias flag, checked against --preset
        other = next(p for p in reproduce.PRESETS if p != name)
        assert main(["reproduce", f"--{name}", "--preset", other]) == 2
        assert f"--preset {other} and --{name} ask for different presets" in capsys.readouterr().err
