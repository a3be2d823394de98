"""What a training run reports: its progress while it runs and its result. No torch here, so the API,
the client and the database layer can name these without loading the model code."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass
class Progress:
    step: int  # optimizer steps completed
    total_steps: int
    loss: float  # mean training loss since the previous report
    tokens_per_second: float
    elapsed_seconds: float  # wall time since train() started


@dataclass
class RunResult:
    """One finished proxy run. Losses are in nats per token; N counts non-embedding parameters."""

    status: Literal["succeeded", "diverged"]
    reason: str | None  # why a run diverged
    width: int
    seed: int  # the initialisation's seed
    data_seed: int  # the batch order's seed (the init seed unless another was given)
    lr: float  # the base Adam LR this run used (μP scales it per parameter group)
    steps: int  # steps completed (fewer than planned when the run diverged)
    final_train_loss: float | None  # mean training loss of the last k steps (None if diverged)
    val_loss: float | None  # held-out loss on fixed windows (None if diverged)
    n_params: int
    n_params_non_embedding: int
    tokens: int  # training tokens seen
    flops: float  # training FLOPs (trainer.accounting.flops_per_token × tokens)
    wall_seconds: float  # the whole call: data, build, training, evaluation
    tokens_per_second: float  # training loop only
    mfu: float | None  # model FLOPs utilisation on a known CUDA GPU, else None
    device: str
    corpus_fingerprint: str
    tokenizer: str  # what produced the token ids ("byte", a BPE, a prepared corpus's tokenizer and hash)
    code_version: str
    # A prepared corpus's text (the same for any tokenizer) and its validation bytes per token: losses
    # on other tokenizers of one text compare in bits per byte. None for other corpora.
    text_fingerprint: str | None = None
    val_bytes_per_token: float | None = None
    loss_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, mean train loss)

    def to_dict(self) -> dict[str, Any]:
        """JSON types only (the curve as [step, loss] lists)."""
        out = asdict(self)
        out["loss_curve"] = [[step, loss] for step, loss in self.loss_curve]
        return out


def code_version() -> str:
    """Hash of the trainer's own source: changes exactly when training code changes."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"trainer-{digest.hexdigest()[:12]}"
