"""Every bad input is one line on stderr and exit 2, across every command (issue: reliability).

The table is ``bad_inputs.txt``; each line runs in-process through the CLI entry, and a few through
a subprocess, as a user would run them.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elasticity.cli import main

TABLE = Path(__file__).with_name("bad_inputs.txt")
BAD_INPUTS = [line for line in TABLE.read_text().splitlines() if line.strip() and not line.startswith("#")]
SUBPROCESS = ["toy rebound --set lr=inf --print-config", "reproduce --seed -1", "theory pareto-fit BINARY",
              "llm rebound --set trust_remote_code=true --print-config"]


_UNFINISHED = '{"experiment": "theory.boundary", "config_hash": "0", "config": {}}'


def placeholders(folder: Path) -> dict[str, str]:
    """The files the table's capitalised words stand for, made in ``folder``."""
    (folder / "dir").mkdir()
    (folder / "binary").write_bytes(b"\x00\xff\xfe\x80")
    (folder / "file").write_text("1 2 3\n")
    (folder / "bad.toml").write_text("[config\nn_pretrain = \n")
    (folder / "list.jsonl").write_text('["a", "b"]\n')
    (folder / "remote.toml").write_text("trust_remote_code = true\n")
    for name, config in (("damaged-run", "{not json"), ("unfinished-run", _UNFINISHED), ("not-a-run", "{}")):
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(config)
    (folder / "not-a-run" / "metrics.csv").write_text("seed,x,measure,value,unit\n")
    (folder / "empty.csv").write_text("x,y\n")
    (folder / "config.json").write_text('{"config": 3}')
    return {"BINARY": folder / "binary", "FOLDER": folder / "dir", "MISSING": folder / "missing.toml",
            "FILE": folder / "file", "BADTOML": folder / "bad.toml", "BADJSONL": folder / "list.jsonl",
            "REMOTECODE": folder / "remote.toml", "LONGNAME": folder / ("x" * 300),
            "UNWRITABLE": folder / "file" / "run", "DAMAGEDRUN": folder / "damaged-run",
            "UNFINISHEDRUN": folder / "unfinished-run", "NOTARUN": folder / "not-a-run",
            "EMPTYCSV": folder / "empty.csv", "NOTATABLE": folder / "config.json"}


def argv_of(line: str, files: dict[str, str]) -> list[str]:
    words = []
    for word in line.split():
        key, sep, value = word.partition("=")
        words.append(f"{key}={files.get(value, value)}" if sep and value in files else str(files.get(word, word)))
    return words


def test_the_table_is_large_and_covers_every_command():
    from elasticity.cli import GROUPS

    assert len(BAD_INPUTS) >= 100
    assert {line.split()[0] for line in BAD_INPUTS} >= set(GROUPS)


@pytest.mark.parametrize("line", BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(argv_of(line, placeholders(tmp_path)))
    err = capsys.readouterr().err.strip()
    print(err)
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("line", SUBPROCESS)
def test_bad_input_through_the_console_script(line, tmp_path):
    argv = argv_of(line, placeholders(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "elasticity", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    print(proc.stderr)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


def _experiment_keys() -> list[tuple[str, str]]:
    from elasticity import registry
    from harness.config import leaf_types

    return [(name, key) for name in sorted(registry.EXPERIMENTS)
            for key in leaf_types(registry.load(name).config_cls)]


VALUES = st.one_of(
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "none", "true", "-", ",", "0,0", "1e400", "-0", "1-2,2-3", "x" * 300, "\x00"]),
    st.lists(st.integers(min_value=-5, max_value=10**13), max_size=5).map(lambda xs: ",".join(map(str, xs))),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(_experiment_keys()), value=VALUES)
def test_any_set_value_is_a_config_or_a_one_line_error(target, value, capsys):
    """Random ``--set key=value`` on every experiment's keys: a printed config (exit 0) that reads back
    from its printed TOML to the same config, or one line and exit 2; never a traceback."""
    name, key = target
    argv = [*name.split("."), "--set", f"{key}={value}", "--print-config"]
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    if code == 0:
        printed = json.loads(captured.out)
        assert printed["experiment"] == name
        assert main(argv) == 0
        with tempfile.TemporaryDirectory() as folder:
            toml = Path(folder, "printed.toml")
            toml.write_text(capsys.readouterr().out)
            assert main([*name.split("."), "--config", str(toml), "--print-config", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["config"] == printed["config"], (key, value)
    else:
        assert code == 2 and len(captured.err.strip().splitlines()) == 1, (key, value, captured.err)
