"""Smoke tests of the ``worldplan`` command line."""

from __future__ import annotations

from typer.testing import CliRunner

from worldplan.cli import app


def test_help_lists_bench_group() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "bench" in result.output


def test_unknown_command_fails_cleanly() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code != 0
