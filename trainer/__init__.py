"""trainer: μP-parametrized transformer proxies, trained on real offline data. Pure compute.

Public surface: ArchitectureSpec, build_model, make_optimizer, count_params, train,
RunResult, Progress, TrainingStopped, load_corpus, Corpus, CorpusAccess, CorpusError. N means
non-embedding parameters throughout (trainer/accounting.py). Every μP rule is in trainer/mup.py.
"""

from trainer.accounting import count_params
from trainer.data import Corpus, CorpusAccess, CorpusError, load_corpus
from trainer.model import build_model
from trainer.mup import make_optimizer
from trainer.spec import ArchitectureSpec, DatasetSpec, ParametrizationSpec, TrainingSpec
from trainer.train import DeviceUnavailable, Progress, RunResult, TrainingStopped, resolve_device, train

__all__ = [
    "ArchitectureSpec",
    "Corpus",
    "CorpusAccess",
    "CorpusError",
    "DatasetSpec",
    "DeviceUnavailable",
    "ParametrizationSpec",
    "Progress",
    "RunResult",
    "TrainingSpec",
    "TrainingStopped",
    "build_model",
    "count_params",
    "load_corpus",
    "make_optimizer",
    "resolve_device",
    "train",
]
