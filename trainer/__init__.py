"""trainer: μP-parametrized transformer proxies, trained on real offline data. Pure compute.

Public surface: ArchitectureSpec, build_model, make_optimizer, count_params, train,
RunResult, Progress, TrainingStopped, load_corpus, Corpus, CorpusAccess, CorpusError, and upscale /
upscale_optimizer (μP upscaling of a trained proxy, trainer/upscale.py). N means
non-embedding parameters throughout (trainer/accounting.py). Every μP rule is in trainer/mup.py.

`import trainer` does not import torch: the spec, the parameter accounting, the corpus access rules and
the result types are what the API and the client need, and loading torch costs them seconds and
hundreds of MB. The model, the optimizer and `train` load it on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainer.accounting import count_params
from trainer.data import Corpus, CorpusAccess, CorpusError, load_corpus
from trainer.result import Progress, RunResult
from trainer.spec import ArchitectureSpec, DatasetSpec, ParametrizationSpec, TrainingSpec

if TYPE_CHECKING:
    from trainer.growth import UpscaleError
    from trainer.model import build_model
    from trainer.mup import make_optimizer
    from trainer.train import DeviceUnavailable, TrainingStopped, resolve_device, train
    from trainer.upscale import upscale, upscale_optimizer

# Names that need torch, and the module each lives in.
_LAZY = {
    "build_model": "trainer.model",
    "make_optimizer": "trainer.mup",
    "train": "trainer.train",
    "TrainingStopped": "trainer.train",
    "DeviceUnavailable": "trainer.train",
    "resolve_device": "trainer.train",
    "upscale": "trainer.upscale",
    "upscale_optimizer": "trainer.upscale",
    "UpscaleError": "trainer.growth",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    # Importing trainer.train binds the package attribute `train` to that module: bind every lazy
    # name of it to the object itself, so `trainer.train` is the function from here on.
    for lazy, source in _LAZY.items():
        if source == module.__name__:
            globals()[lazy] = getattr(module, lazy)
    return globals()[name]


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
    "UpscaleError",
    "build_model",
    "count_params",
    "load_corpus",
    "make_optimizer",
    "resolve_device",
    "train",
    "upscale",
    "upscale_optimizer",
]
