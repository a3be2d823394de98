"""Scaling-law fits with honest intervals: (N, loss) points → FitResult → Prediction.

Pure numpy/scipy, no database, no HTTP, no torch. Every law lives in predictor.laws.
"""

from predictor.backtest import Backtest, backtest
from predictor.fitting import fit
from predictor.laws import LAWS, Law
from predictor.prediction import Prediction, probability_best
from predictor.result import FitResult

__all__ = ["LAWS", "Backtest", "FitResult", "Law", "Prediction", "backtest", "fit", "probability_best"]
