"""Smoke tests of ``worldplan bench planner``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from worldplan.cli import app


def test_bench_planner_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench" / "planner.json"
    args = ["bench", "planner", "--problems", "1", "--optimisers", "cem", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ms p50" in result.output
    data = json.loads(out.read_text())
    assert [(r["optimiser"], r["mode"]) for r in data["rows"]] == [
        ("cem", "cold"),
        ("cem", "warm"),
        ("cem", "batched"),
    ]
    assert all(r["reached_optimum"] == 1 for r in data["rows"])
    assert not list(out.parent.glob(".*.tmp"))


def test_bench_planner_rejects_unknown_names(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    bad_model = CliRunner().invoke(app, ["bench", "planner", "--model", "pusht", "--out", str(out)])
    assert bad_model.exit_code != 0
    assert "model must be 'analytic'" in bad_model.output
    bad_opt = CliRunner().invoke(
        app, ["bench", "planner", "--optimisers", "cem,adam", "--out", str(out)]
    )
    assert bad_opt.exit_code != 0
    assert "adam" in bad_opt.output
    assert not out.exists()
