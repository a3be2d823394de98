"""`mupredict train`: one proxy from a spec file, the RunResult as JSON, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli
from tests.trainer.helpers import tiny_spec


def write_spec(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(tiny_spec(**fields).model_dump_json())
    return path


def test_train_prints_the_result_as_json(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    result = CliRunner().invoke(cli, ["train", "--spec", str(spec), "--width", "16", "--steps", "3"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    assert payload["status"] == "succeeded" and payload["steps"] == 3 and payload["width"] == 16
    assert payload["lr"] == tiny_spec().training.lr
    pinned = CliRunner().invoke(
        cli, ["train", "--spec", str(spec), "--width", "16", "--steps", "3", "--lr", "0.003"]
    )
    assert pinned.exit_code == 0, pinned.output
    other = json.loads(pinned.stdout[pinned.stdout.index("{") :])
    assert other["lr"] == 0.003 and other["val_loss"] != payload["val_loss"]


def test_bad_spec_prints_the_validation_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "head_dim": 32, "proxy_widths": [100]}))
    result = CliRunner().invoke(cli, ["train", "--spec", str(bad), "--width", "64"])
    assert result.exit_code == 2
    assert "width 100 is not a multiple of head size 32: use 96 or 128" in result.output

    spec = write_spec(tmp_path)
    result = CliRunner().invoke(cli, ["train", "--spec", str(spec), "--width", "20"])
    assert result.exit_code == 2 and "not a multiple of head size 8" in result.output

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = CliRunner().invoke(cli, ["train", "--spec", str(broken), "--width", "16"])
    assert result.exit_code == 2 and "not a valid spec" in result.output
