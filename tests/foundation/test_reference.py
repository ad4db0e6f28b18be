"""--update-reference: it refuses to start from a tree that differs from HEAD outside figures/, records
the commit it was made from, and Holm-adjusts every headline's primary readings across results.json."""

import hashlib
import json
import subprocess
from types import SimpleNamespace

import pytest

from elasticity import reproduce
from elasticity.command import group_main
from harness import reference
from harness.errors import ConfigError
from harness.markdown import TABLE_END, TABLE_START
from harness.runs import RunDir, git_commit
from llm_bridge.common import data_record, provenance, sha256_path
from tests.foundation.test_cli import _micro_command
from tests.foundation.test_runs import Micro

COMMANDS = {"micro": ("micro", _micro_command)}


def _git(root, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root,
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A committed scratch checkout with a README and a figures/ folder, standing in for the repository."""
    root = tmp_path / "repo"
    (root / "figures").mkdir(parents=True)
    (root / "README.md").write_text(f"# r\n{TABLE_START}\n{TABLE_END}\n")
    (root / "code.py").write_text("x = 1\n")
    (root / "figures" / "results.json").write_text(json.dumps({"schema_version": 2, "experiments": {}}))
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "start")
    monkeypatch.setattr(reference, "repo_root", lambda: root)
    return root


def test_clean_tree_check(checkout, tmp_path):
    head = _git(checkout, "rev-parse", "HEAD")
    assert reference.require_clean_tree() == head
    (checkout / "figures" / "results.json").write_text("{}")  # figures/ may differ
    (checkout / "untracked.txt").write_text("new")  # untracked files do not count
    # an earlier update's rendered table is an output too; the README's own text is not
    (checkout / "README.md").write_text(f"# r\n{TABLE_START}\n| a table |\n{TABLE_END}\n")
    assert reference.require_clean_tree() == head
    assert git_commit(checkout) == head  # a run made now records the same clean commit
    (checkout / "README.md").write_text(f"# r, edited\n{TABLE_START}\n{TABLE_END}\n")
    with pytest.raises(ConfigError, match=r"README\.md"):
        reference.require_clean_tree()
    (checkout / "README.md").write_text(f"# r\n{TABLE_START}\n{TABLE_END}\n")
    (checkout / "code.py").write_text("x = 2\n")
    assert git_commit(checkout) == head + "-dirty"
    with pytest.raises(ConfigError, match=r"refuses to start: tracked files outside figures/ differ.*code\.py"):
        reference.require_clean_tree()
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="needs a git checkout"):
        reference.require_clean_tree(tmp_path / "plain")


def test_update_reference_refuses_before_running(checkout, tmp_path, capsys):
    (checkout / "code.py").write_text("x = 2\n")
    out = tmp_path / "run"
    assert group_main("demo", "", ["micro", "--out", str(out), "--update-reference"], COMMANDS) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refuses to start" in err
    assert not out.exists(), "the run started before the check"
    assert reproduce.main(["--only", "theory.simulate", "--out", str(tmp_path / "rep"), "--update-reference"]) == 2
    assert "refuses to start" in capsys.readouterr().err and not (tmp_path / "rep").exists()


def test_update_reference_from_a_clean_checkout_records_its_commit(checkout, tmp_path):
    head = _git(checkout, "rev-parse", "HEAD")
    # an earlier update's output, not yet committed, does not block the next one
    (checkout / "figures" / "results.json").write_text(json.dumps({"schema_version": 1, "experiments": {}}))
    assert group_main("demo", "", ["micro", "--out", str(tmp_path / "run"), "--update-reference"], COMMANDS) == 0
    results = json.loads((checkout / "figures" / "results.json").read_text())
    headline = results["experiments"]["demo.micro"]["headline"]
    assert headline["provenance"]["git_commit"] == head and headline["provenance"]["tree_clean"]
    assert "Primary readings" in (checkout / "README.md").read_text()


def test_holm_across_headlines_replaces_stale_adjustments():
    def headline(pid, p):
        return {"headline": {"predictions": [
            {"id": pid, "primary": True, "family": "rebound", "verdict": "holds", "p_value": p,
             "p_adjusted": p, "verdict_adjusted": "holds"},
            {"id": "x", "primary": False, "p_value": 0.01}]}}

    results = {"experiments": {"toy.rebound": headline("rebound.a", 0.03), "llm.rebound": headline("rebound.a", 0.04),
                               "old": {"headline": {"predictions": [{"id": "y", "verdict": "holds"}]}}}}
    adjusted = reference.adjust_headlines(results)
    toy, llm = (adjusted["experiments"][k]["headline"]["predictions"][0] for k in ("toy.rebound", "llm.rebound"))
    assert toy["p_adjusted"] == pytest.approx(0.06) and llm["p_adjusted"] == pytest.approx(0.06)
    assert toy["verdict_adjusted"] == llm["verdict_adjusted"] == "inconclusive"
    assert adjusted["holm_families"] == {"rebound": ["llm.rebound:rebound.a", "toy.rebound:rebound.a"]}
    assert "every headline" in adjusted["holm_scope"]
    assert adjusted["experiments"]["old"]["headline"]["predictions"] == [{"id": "y", "verdict": "holds"}]


def test_llm_provenance_hashes_weights_and_data(tmp_path):
    run = RunDir.open("demo.micro", Micro(), out=tmp_path / "run")
    run.write_json("model.json", {"kind": "builtin", "weights_sha256": {"model.safetensors": "ab"},
                                  "gguf_sha256": "cd"})
    data = tmp_path / "records.jsonl"
    data.write_text('{"prompt": "p", "response": "r", "label": "aligned"}\n')
    config = SimpleNamespace(model="smollm2-135m", data=str(data), task="sentiment")
    run.write_json("data.json", data_record(config))
    record = provenance(config, run)
    assert record == {"model": "smollm2-135m", "weights_sha256": {"model.safetensors": "ab"}, "gguf_sha256": "cd",
                      "data": str(data), "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest()}
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "a.arrow").write_bytes(b"x")
    assert len(sha256_path(folder)) == 64 and sha256_path(folder) != sha256_path(folder / "a.arrow")


def test_a_large_reference_table_is_kept_compressed_and_reads_back(tmp_path, monkeypatch):
    from harness import reference
    from harness.metrics import metric_row, metrics_path, read_metrics_csv, write_metrics_csv

    run, data = tmp_path / "run", tmp_path / "data"
    run.mkdir()
    data.mkdir()
    rows = [metric_row("score", float(i), "nats", seed=0, x=i, task="sentiment") for i in range(50)]
    write_metrics_csv(run / "metrics.csv", rows)
    monkeypatch.setattr(reference, "GZIP_BYTES", 100)
    first = reference.keep_reference_file(run / "metrics.csv", data)
    assert first.name == "metrics.csv.gz" and metrics_path(data) == first
    assert read_metrics_csv(first) == read_metrics_csv(run / "metrics.csv")
    assert reference.keep_reference_file(run / "metrics.csv", data).read_bytes() == first.read_bytes()  # same bytes
    monkeypatch.setattr(reference, "GZIP_BYTES", 10**9)
    assert reference.keep_reference_file(run / "metrics.csv", data).name == "metrics.csv" and not first.exists()
