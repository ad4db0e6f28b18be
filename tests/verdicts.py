"""The assertion behind every prediction test: a measured verdict equals the recorded one.

The recorded verdicts live in ``figures/results.json`` under each test config's hash. A changed
verdict fails until someone records it deliberately with ``ELASTICITY_RECORD_VERDICTS=1`` and
commits the diff of ``results.json``. Only primary readings have verdicts: a test pointed at an
exploratory reading fails at once. The raw verdict is compared (a test config is judged alone, so
its Holm adjustment would depend on which tests share a run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from harness import reference
from harness.reference import load_results, save_results
from harness.runs import folder_locked, git_commit

RECORD_ENV = "ELASTICITY_RECORD_VERDICTS"


def recorded_test_verdict(experiment: str, test_hash: str, prediction_id: str) -> dict[str, Any] | None:
    return (
        load_results()["experiments"].get(experiment, {}).get("tests", {})
        .get(test_hash, {}).get(prediction_id)
    )


def record_test_verdict(experiment: str, test_hash: str, prediction: Mapping[str, Any]) -> None:
    record = {
        "verdict": prediction["verdict"],
        "value": prediction.get("value"),
        "ci": prediction.get("ci"),
        "n_runs": prediction.get("n_runs"),
        "commit": git_commit(),  # "-dirty" when the code that measured it was not committed
    }
    # the suite's worker processes may be recording at the same time
    with folder_locked(reference.results_path().parent):
        results = load_results()
        tests = results["experiments"].setdefault(experiment, {}).setdefault("tests", {})
        tests.setdefault(test_hash, {})[prediction["id"]] = record
        save_results(results)


def check_recorded_verdict(experiment: str, test_hash: str, prediction: Mapping[str, Any]) -> str:
    """Print the measured value and interval; raise AssertionError when the verdict changed.

    With ``ELASTICITY_RECORD_VERDICTS=1`` the measured verdict is recorded instead.
    """
    if not prediction.get("primary"):
        raise AssertionError(f"{experiment} {prediction['id']} is an exploratory reading and has no verdict; "
                             "point the test at a primary reading (harness/preregistration.toml)")
    measured = (
        f"{experiment} {prediction['id']}: verdict={prediction['verdict']} "
        f"value={prediction.get('value'):.4g} ci={prediction.get('ci')} n_runs={prediction.get('n_runs')} "
        f"(test config {test_hash})"
    )
    print(measured)
    if os.environ.get(RECORD_ENV) == "1":
        record_test_verdict(experiment, test_hash, prediction)
        return measured + " [recorded]"
    recorded = recorded_test_verdict(experiment, test_hash, prediction["id"])
    if recorded is None:
        raise AssertionError(
            f"no verdict recorded for {measured}. Record it deliberately with "
            f"{RECORD_ENV}=1 and commit figures/results.json."
        )
    if recorded["verdict"] != prediction["verdict"]:
        raise AssertionError(f"verdict changed: recorded {recorded['verdict']}, measured {measured}")
    return measured
