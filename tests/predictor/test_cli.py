"""`mupredict fit FILE.csv` prints the report and the prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from app.cli import cli
from tests.predictor.helpers import chinchilla_points, mu_law

runner = CliRunner()


def write_points(path: Path, header: str = "n_params,loss") -> Path:
    n = np.geomspace(2e6, 1e8, 6)
    y = mu_law(n) * np.exp(0.01 * np.random.default_rng(0).standard_normal(6))
    path.write_text(header + "\n" + "".join(f"{a},{b}\n" for a, b in zip(n, y, strict=True)))
    return path


def test_fit_prints_report_and_prediction(tmp_path: Path) -> None:
    csv_file = write_points(tmp_path / "points.csv")
    result = runner.invoke(cli, ["fit", str(csv_file), "--at", "1e9", "--level", "0.8"])
    assert result.exit_code == 0, result.output
    assert "[[Variables]]" in result.output and "alpha" in result.output
    assert "loss at 1e+09" in result.output and "80% interval for the expected loss" in result.output
    assert "10× the largest fitted N" in result.output


def test_fit_reads_seed_labels_and_answers_either_question(tmp_path: Path) -> None:
    n = np.repeat(np.geomspace(2e6, 1e8, 6), 2)
    y = mu_law(n) * np.exp(0.01 * np.random.default_rng(1).standard_normal(12))
    csv_file = tmp_path / "seeded.csv"
    csv_file.write_text(
        "N,seed,loss\n" + "".join(f"{a},{i % 2},{b}\n" for i, (a, b) in enumerate(zip(n, y, strict=True)))
    )
    expected = runner.invoke(cli, ["fit", str(csv_file), "--at", "1e9"])
    runs = runner.invoke(cli, ["fit", str(csv_file), "--at", "1e9", "--interval", "run", "--seeds", "3"])
    assert expected.exit_code == runs.exit_code == 0, expected.output + runs.output
    assert "2 shared seeds" in expected.output and "3 new run(s), averaged" in runs.output


def test_fit_accepts_an_N_column_and_other_laws(tmp_path: Path) -> None:
    csv_file = write_points(tmp_path / "points.csv", header="N,loss")
    result = runner.invoke(cli, ["fit", str(csv_file), "--law", "power", "--n-bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert "power: L = A·N^(−alpha)" in result.output


def test_fit_kaplan_slice_takes_gamma_and_refuses_without_it(tmp_path: Path) -> None:
    csv_file = write_points(tmp_path / "points.csv")
    args = ["fit", str(csv_file), "--law", "kaplan_slice", "--at", "1e9"]
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 2 and "needs gamma" in refused.output
    result = runner.invoke(cli, [*args, "--gamma", "0.27", "--gamma-sd", "0.02", "--gamma-dof", "15"])
    assert result.exit_code == 0, result.output
    assert "kaplan_slice: L = (A·N^(−alpha) + C)^gamma" in result.output
    assert "gamma: 0.27 +/- 0.02 on 15 dof (fixed" in result.output and "loss at 1e+09" in result.output


def test_fit_explains_bad_input(tmp_path: Path) -> None:
    csv_file = tmp_path / "few.csv"
    csv_file.write_text("n_params,loss\n1e6,4.0\n2e6,3.8\n4e6,3.6\n")
    result = runner.invoke(cli, ["fit", str(csv_file)])
    assert result.exit_code == 2
    assert "needs at least 4 points" in result.output
    missing = tmp_path / "nodata.csv"
    missing.write_text("width,loss\n1,4.0\n")
    assert (
        "nodata.csv needs columns named n_params or N, loss"
        in runner.invoke(cli, ["fit", str(missing)]).output
    )


def test_fit_chinchilla_needs_tokens_column_and_query(tmp_path: Path) -> None:
    x, loss = chinchilla_points()
    csv_file = tmp_path / "chinchilla.csv"
    csv_file.write_text(
        "N,tokens,loss\n" + "".join(f"{a},{b},{c}\n" for (a, b), c in zip(x, loss, strict=True))
    )
    ok = runner.invoke(
        cli,
        [
            "fit",
            str(csv_file),
            "--law",
            "chinchilla",
            "--n-bootstrap",
            "200",
            "--at",
            "7e10",
            "--tokens",
            "1.4e12",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "beta" in ok.output and "loss at 7e+10" in ok.output
    no_tokens = runner.invoke(
        cli, ["fit", str(csv_file), "--law", "chinchilla", "--n-bootstrap", "200", "--at", "7e10"]
    )
    assert no_tokens.exit_code == 2 and "give --tokens with --at" in no_tokens.output


def test_fit_compute_law_takes_a_compute_column_and_refuses_n(tmp_path: Path) -> None:
    """`--law compute` fits loss against training FLOPs: a CSV of N alone is refused, not fitted as C."""
    n_only = write_points(tmp_path / "points.csv")
    refused = runner.invoke(cli, ["fit", str(n_only), "--law", "compute"])
    assert refused.exit_code == 2
    assert "needs columns named C (or compute, flops: training FLOPs), loss" in refused.output
    compute = write_points(tmp_path / "compute.csv", header="C,loss")
    fitted = runner.invoke(cli, ["fit", str(compute), "--law", "compute", "--at", "1e9"])
    assert fitted.exit_code == 0, fitted.output
    assert "compute" in fitted.output and "loss at 1e+09" in fitted.output


def test_fit_kaplan_takes_n_and_d_like_chinchilla(tmp_path: Path) -> None:
    x, loss = chinchilla_points()
    csv_file = tmp_path / "grid.csv"
    csv_file.write_text("N,D,loss\n" + "".join(f"{a},{b},{c}\n" for (a, b), c in zip(x, loss, strict=True)))
    ok = runner.invoke(cli, ["fit", str(csv_file), "--law", "kaplan", "--at", "7e10", "--tokens", "1.4e12"])
    assert ok.exit_code == 0, ok.output
    assert "(A·N^(−alpha) + B·D^(−beta))^gamma" in ok.output and "loss at 7e+10" in ok.output
    no_d = tmp_path / "n_only.csv"
    no_d.write_text("N,loss\n" + "".join(f"{a},{c}\n" for (a, _), c in zip(x, loss, strict=True)))
    refused = runner.invoke(cli, ["fit", str(no_d), "--law", "kaplan"])
    assert refused.exit_code == 2 and "needs columns named n_params or N, D or tokens, loss" in refused.output
    no_tokens = runner.invoke(cli, ["fit", str(csv_file), "--law", "kaplan", "--at", "7e10"])
    assert no_tokens.exit_code == 2
    assert "kaplan predicts at (N, D): give --tokens with --at" in no_tokens.output
