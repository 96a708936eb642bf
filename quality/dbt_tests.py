"""DBT_TESTS: the dbt data tests of a build, read from its run_results.json, as one catalog rule."""

from __future__ import annotations

import json
from pathlib import Path

from quality.catalog import rules
from quality.results import RuleResult


def dbt_test_results(run_results: Path) -> RuleResult:
    rule = rules()["DBT_TESTS"]
    if not run_results.exists():
        return RuleResult(rule, 1, [{"test": str(run_results), "detail": "no dbt run results: was dbt build run?"}])
    results = json.loads(run_results.read_text(encoding="utf-8"))["results"]
    tests = [r for r in results if r["unique_id"].startswith("test.")]
    failed = [r for r in tests if r["status"] in ("fail", "error")]
    samples = [{"test": r["unique_id"].split(".")[2], "detail": (r.get("message") or r["status"])[:300]}
               for r in failed[:20]]
    return RuleResult(rule, len(failed), samples, note=f"{len(tests)} dbt tests ran")
