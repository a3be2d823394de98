"""Scaling-law fits with calibrated intervals: (N, loss) points → FitResult → Prediction; comparisons.

Pure numpy/scipy, no database, no HTTP, no torch. Every law lives in predictor.laws; the noise model
in predictor.noise; intervals in predictor.result (profile likelihood in predictor.profile); paired
comparisons in predictor.compare.
"""

from predictor.backtest import Backtest, HeldOut, backtest, hold_out_largest
from predictor.compare import Comparison, compare
from predictor.fitting import fit
from predictor.laws import LAWS, Law
from predictor.noise import NoiseModel
from predictor.prediction import DEFAULT_METHOD, INTERVALS, METHODS, Method, Prediction
from predictor.result import FitResult

__all__ = [
    "DEFAULT_METHOD",
    "INTERVALS",
    "LAWS",
    "METHODS",
    "Backtest",
    "Comparison",
    "FitResult",
    "HeldOut",
    "Law",
    "Method",
    "NoiseModel",
    "Prediction",
    "backtest",
    "compare",
    "fit",
    "hold_out_largest",
]
