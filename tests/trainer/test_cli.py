"""`mupredict train`: one proxy from a spec file, the RunResult as JSON, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import trainer
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


def test_a_cuda_device_this_torch_cannot_use_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--device cuda` on a CPU build of torch (as installed here) says so and how to fix it, for `train`
    and for a worker, instead of torch's traceback from deep in Module.to."""
    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU build, on any machine
    spec = write_spec(tmp_path)
    for args in (
        ["train", "--spec", str(spec), "--width", "16", "--device", "cuda"],
        ["worker", "--device", "cuda:1"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "needs a CUDA build of torch" in result.output and "--device cpu" in result.output
        assert "Traceback" not in result.output and len(result.output.splitlines()) <= 2


def test_resolve_device_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert trainer.resolve_device("cpu").type == "cpu"
    with pytest.raises(trainer.DeviceUnavailable, match="not a torch device"):
        trainer.resolve_device("tpu:0")
    monkeypatch.setattr(torch.version, "cuda", "12.8")  # a CUDA build ...
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # ... with two GPUs
    assert trainer.resolve_device("cuda:1").index == 1
    with pytest.raises(trainer.DeviceUnavailable, match="only cuda:0 to cuda:1 exist"):
        trainer.resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # ... that sees none
    with pytest.raises(trainer.DeviceUnavailable, match="sees no GPU"):
        trainer.resolve_device("cuda")
