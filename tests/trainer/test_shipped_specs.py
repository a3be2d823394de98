"""Every shipped example spec trains a ladder with a real scaling trend on the CPU (issue 20, point 1).

The earlier rope/RMSNorm/CompleteP example (widths 32-128, 0.8M tokens) did not fall with width
(1.921, 1.881, 1.946, 1.873) and its fit was served as a prediction. Here each spec in examples/specs
trains its own proxy ladder as written (seed 0, its LR and steps, the built-in corpus), and its fit must
show the trend the service's quality gate (predictor.quality) asks for: the loss falls with N beyond
noise (one-sided p < 0.05), R² > 0, the parameters identified. The gate's fourth check, the interval's
width at 10×, is left to the ladders users train: with one seed the 3-parameter law has 2 residual
degrees of freedom, and the service's ladders have replicates (the demo trains two seeds; gpt_gelu's
one-seed interval came out at ±25.1 % against the ±25 % bound). About five minutes on two cores for
the three specs, so marked slow; CI runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import predictor
import trainer
from predictor.quality import TREND_P, assess

INTERVAL = 90  # the gate's interval check, reported as "the 90% interval … wider than …"

SPECS = sorted((Path(__file__).resolve().parents[2] / "examples" / "specs").glob("*.json"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_the_shipped_spec_has_a_scaling_trend(path: Path) -> None:
    spec = trainer.ArchitectureSpec.model_validate(json.loads(path.read_text()))
    runs = [trainer.train(spec, width, seed=0, device="cpu") for width in spec.proxy_widths]
    assert [r.status for r in runs] == ["succeeded"] * len(runs)
    n = np.array([r.n_params_non_embedding for r in runs], dtype=float)
    losses = np.array([r.val_loss for r in runs])
    assert losses[-1] < losses[0] - 0.1, f"{path.name}: {losses.round(4).tolist()}"
    quality = assess(predictor.fit(n, losses, law="mu_scaling"))
    trend = [r for r in quality.reasons if not r.startswith(f"the {INTERVAL}% interval")]
    assert not trend, f"{path.name}: {trend} (losses {losses.round(4).tolist()})"
    assert quality.trend_p < TREND_P and quality.r2 > 0.9, (path.name, quality)
