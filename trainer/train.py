"""Train one proxy: spec + width -> RunResult. Pure compute: no database, no HTTP.

The worker calls `train(...)` with a progress callback (heartbeat) and a `should_stop` poll (SIGTERM,
lost lease). A divergent run is a result (`status="diverged"`), never an exception; a stop request is
an exception (`TrainingStopped`), because nothing about the run is worth recording.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection

import numpy as np
import torch

from trainer.accounting import count_params, flops_per_token, peak_flops
from trainer.batches import Prefetcher
from trainer.checkpoint import CheckpointError, TrainState, capture
from trainer.data import Corpus, CorpusAccess, CorpusError, load_corpus
from trainer.growth import check_widths
from trainer.loss import LossFn, loss_for
from trainer.memory import device_budget, micro_batch_size
from trainer.model import build_model
from trainer.mup import make_optimizer
from trainer.ngpt import renormaliser
from trainer.result import Progress, RunResult, code_version
from trainer.spec import ArchitectureSpec, decay_steps
from trainer.step import TrainStep, autocast
from trainer.upscale import WarmStart

MAX_CURVE_POINTS = 200
BLOWUP_FACTOR = 2.0  # a loss above 2 × the first step's loss is a blow-up, not noise


class TrainingStopped(Exception):
    """Raised by train() when should_stop() returned True; the partial run is discarded."""


def lr_factor(spec: ArchitectureSpec, step: int, total_steps: int, warmup_steps: int | None = None) -> float:
    """Schedule multiplier in [0, 1] for `step`; LambdaLR applies it to each group's own μP LR. The
    warmup is `warmup_steps`, or training.warmup_fraction of the run when None (token-horizon branches
    share one warmup whatever their length: trainer/horizon.py)."""
    t = spec.training
    warmup = t.warmup_steps_for(total_steps) if warmup_steps is None else warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    if t.schedule == "wsd":
        decay = decay_steps(t.decay_fraction, total_steps)
        return min(1.0, (total_steps - step) / decay)
    progress = (step - warmup) / max(1, total_steps - warmup)
    return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class DeviceUnavailable(ValueError):
    """The requested device cannot be used by this torch on this machine; the message says what to do."""


def resolve_device(device: str) -> torch.device:
    """`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`; DeviceUnavailable, with the fix,
    for a CUDA device this torch cannot reach (without this check a CPU build of torch fails deep in
    `Module.to` with "Torch not compiled with CUDA enabled" and a long traceback)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise DeviceUnavailable(
            f"device {device!r} is not a torch device: use auto, cpu, cuda or cuda:N"
        ) from exc
    if resolved.type != "cuda":
        return resolved
    if torch.version.cuda is None:
        raise DeviceUnavailable(
            f"device {device!r} needs a CUDA build of torch, and this one ({torch.__version__}) is CPU-only: "
            "install a CUDA build (pip install torch --index-url https://download.pytorch.org/whl/cu128, "
            "matching your driver) or train with --device cpu"
        )
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise DeviceUnavailable(
            f"device {device!r}: this torch is built for CUDA {torch.version.cuda} but sees no GPU "
            "(check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES), or train with --device cpu"
        )
    if resolved.index is not None and resolved.index >= count:
        raise DeviceUnavailable(f"device {device!r}: only cuda:0 to cuda:{count - 1} exist on this machine")
    return resolved


def train(
    spec: ArchitectureSpec,
    width: int,
    *,
    seed: int | None = None,
    data_seed: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    device: str = "auto",
    corpus: Corpus | None = None,
    corpus_access: CorpusAccess | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    compile: bool | None = None,
    memory_budget: float | None = None,
    micro_batch: int | None = None,
    checkpoint_at: Collection[int] = (),
    on_checkpoint: Callable[[TrainState], None] | None = None,
    resume_from: TrainState | None = None,
    warm_start: WarmStart | None = None,
    warmup_steps: int | None = None,
    stop_after: int | None = None,
    log_every: int = 10,
) -> RunResult:
    """Train `spec` at `width`; `seed`, `steps` and `lr` override spec.training.seed, .steps and .lr.

    `seed` sets the initialisation and, unless `data_seed` is given, the batch order: two designs run
    with one `data_seed` see the same batches in the same order while their initialisations differ.
    `corpus_access` limits where spec.dataset may be read from and how much (trainer.data.CorpusAccess).

    Speed, never the result: `compile` (None: on for CUDA, off on a CPU, where it does not pay) runs
    the model through torch.compile; the batch is split into equal micro-batches whose gradients
    accumulate (trainer/step.py), `micro_batch` sequences each, or as many as `memory_budget` bytes of
    activations hold (None: the GPU's free memory; on a CPU the whole batch), trainer/memory.py.

    Checkpoints (trainer/checkpoint.py): after each step in `checkpoint_at`, `on_checkpoint` gets the
    run's state; `resume_from` continues from such a state and reproduces the uninterrupted run. It may
    come from a run of another length whose LR schedule was the same up to the state's step: a
    token-horizon branch resumes from its trunk (trainer/horizon.py). `warmup_steps` fixes the warmup
    (None: training.warmup_fraction of `steps`); `stop_after` ends the run after that many steps of the
    `steps` it is planned for (the trunk, which stops where the longest branch's decay starts).

    `warm_start` starts from a narrower run's final state, widened to `width` (trainer/upscale.py): its
    weights and Adam moments, with this run's own LR schedule, seed (the upscaling noise's) and batches.
    """
    started = time.perf_counter()
    spec.validate_width(width)
    seed = spec.training.seed if seed is None else seed
    data_seed = seed if data_seed is None else data_seed
    total_steps = spec.training.steps if steps is None else steps
    base_lr = spec.training.lr if lr is None else lr
    if total_steps < 1:
        raise ValueError(f"steps must be at least 1, not {total_steps}")
    if not (math.isfinite(base_lr) and base_lr > 0):
        raise ValueError(f"lr must be a positive number, not {base_lr}")
    if micro_batch is not None and (micro_batch < 1 or spec.batch_size % micro_batch):
        raise ValueError(
            f"micro_batch {micro_batch} must divide the batch of {spec.batch_size} sequences "
            "(training.batch_tokens / context_length)"
        )
    stop = total_steps if stop_after is None else stop_after
    if not 1 <= stop <= total_steps:
        raise ValueError(f"stop_after must lie in 1..{total_steps} (the steps), not {stop_after}")
    if warmup_steps is not None and not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_steps must lie in 0..{total_steps - 1}, not {warmup_steps}")
    warmup = spec.training.warmup_steps_for(total_steps) if warmup_steps is None else warmup_steps
    if resume_from is not None:
        resume_from.check_matches(width=width, seed=seed, data_seed=data_seed, lr=base_lr)
        _check_same_schedule(spec, resume_from, total_steps, warmup, stop)
        if warm_start is not None:
            raise ValueError("give resume_from or warm_start, not both")
    if warm_start is not None:
        check_widths(spec, warm_start.state.width, width)
    dev = resolve_device(device)
    corpus = load_corpus(spec.dataset, corpus_access) if corpus is None else corpus
    if corpus.vocab_size > spec.vocab_size:
        raise CorpusError(
            f"the corpus has {corpus.vocab_size} tokens but the spec's vocabulary {spec.vocab_size}: "
            "load the corpus from spec.dataset"
        )
    corpus.check_context(spec.context_length)
    on_cuda = dev.type == "cuda"
    if on_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers (the loss) on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    if micro_batch is None:
        budget = device_budget(spec, width, dev) if memory_budget is None else memory_budget
        micro_batch = micro_batch_size(spec, width, budget, half_precision=on_cuda)

    torch.manual_seed(seed)  # initialisation on the CPU, so CPU and CUDA runs start identical
    widened = None if warm_start is None else warm_start.widen(spec, width, seed, base_lr)
    model = build_model(spec, width) if widened is None else widened[0]
    if resume_from is not None:
        model.load_state_dict(resume_from.model)
    model.to(dev)
    optimizer = make_optimizer(model, spec, lr=base_lr, steps=total_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(spec, s, total_steps, warmup))
    if resume_from is not None:  # after LambdaLR, which resets each group's LR to its first step's
        optimizer.load_state_dict(resume_from.optimizer)
        schedule.load_state_dict(resume_from.schedule)
    if widened is not None:  # the widened moments, onto the device; this run's own LRs and schedule
        current = optimizer.state_dict()
        optimizer.load_state_dict({**current, "state": widened[1].state_dict()["state"]})
    compiling = on_cuda if compile is None else compile
    forward = torch.compile(model) if compiling else model
    loss = loss_for(model, forward, micro_batch * spec.context_length, compiling)
    step_fn = TrainStep(
        loss,
        model.parameters(),
        optimizer,
        micro_batch=micro_batch,
        grad_clip=spec.training.grad_clip,
        device=dev,
        after_step=renormaliser(model, spec),
    )

    first = 0 if resume_from is None else resume_from.step
    # Losses stay on the device and are read at report steps, so CUDA never waits per step.
    losses = torch.zeros(total_steps, device=dev)
    read: list[float] = [] if resume_from is None else list(resume_from.losses)
    reason: str | None = None
    # Throughput leaves out this call's first step (compilation, allocator and kernel warm-up).
    loop_seconds, warm_seconds, warm_steps = 0.0, 0.0, 0

    def tokens_per_second(done: int) -> float:
        steps, seconds = (warm_steps, warm_seconds) if warm_steps else (done - first, loop_seconds)
        return steps * spec.training.batch_tokens / seconds if seconds > 0 else 0.0

    last_report = first
    batches = Prefetcher(corpus, data_seed, spec.batch_size, spec.context_length, dev, start=first, stop=stop)
    with batches:
        for step in range(first, stop):
            if should_stop is not None and should_stop():
                raise TrainingStopped(f"stopped at step {step} of {total_steps}")
            loop_start = time.perf_counter()
            x, y = batches.next()
            losses[step] = step_fn(x, y)
            schedule.step()
            done = step + 1
            report = done % log_every == 0 or done == stop or done in checkpoint_at
            if report or done == first + 1:  # the first step is read to time the warm-up apart
                read.extend(losses[len(read) : done].tolist())  # synchronises with the device
            elapsed = time.perf_counter() - loop_start
            loop_seconds += elapsed
            if done > first + 1:
                warm_seconds, warm_steps = warm_seconds + elapsed, warm_steps + 1
            if not report:
                continue
            reason = _divergence(read, last_report)
            if reason is not None:
                break
            previous_report, last_report = last_report, done
            if progress is not None:
                progress(
                    Progress(
                        step=done,
                        total_steps=stop,
                        loss=float(np.mean(read[previous_report:done])),
                        tokens_per_second=tokens_per_second(done),
                        elapsed_seconds=time.perf_counter() - started,
                    )
                )
            if on_checkpoint is not None and done in checkpoint_at:
                on_checkpoint(
                    capture(
                        done,
                        total_steps,
                        warmup,
                        width=width,
                        seed=seed,
                        data_seed=data_seed,
                        lr=base_lr,
                        model=model,
                        optimizer=optimizer,
                        schedule=schedule,
                        losses=read,
                    )
                )

    n_params, n_non_embedding = count_params(spec, width)
    tokens = len(read) * spec.training.batch_tokens
    per_token = flops_per_token(spec, width)
    rate = tokens_per_second(len(read))
    peak = peak_flops(torch.cuda.get_device_name(dev)) if on_cuda else None
    val_loss = None
    if reason is None:
        val_loss = evaluate(loss, corpus, spec, dev)
        if not math.isfinite(val_loss):
            reason = f"validation loss is {val_loss}"
            val_loss = None
    k = max(1, min(50, len(read) // 10))
    return RunResult(
        status="succeeded" if reason is None else "diverged",
        reason=reason,
        width=width,
        seed=seed,
        data_seed=data_seed,
        lr=base_lr,
        steps=len(read),
        final_train_loss=float(np.mean(read[-k:])) if reason is None else None,
        val_loss=val_loss,
        n_params=n_params,
        n_params_non_embedding=n_non_embedding,
        tokens=tokens,
        flops=float(per_token * tokens),
        wall_seconds=time.perf_counter() - started,
        tokens_per_second=rate,
        mfu=rate * per_token / peak if peak is not None else None,
        device=str(dev) if not on_cuda else f"cuda ({torch.cuda.get_device_name(dev)})",
        corpus_fingerprint=corpus.fingerprint,
        tokenizer=corpus.tokenizer,
        code_version=code_version(),
        text_fingerprint=corpus.text_fingerprint,
        val_bytes_per_token=corpus.val_bytes_per_token,
        loss_curve=_curve(read),
    )


def _check_same_schedule(
    spec: ArchitectureSpec, state: TrainState, total_steps: int, warmup: int, stop: int
) -> None:
    """A state continues this run only if the LR it was trained with, step by step, is this run's."""
    if state.step >= stop:
        raise CheckpointError(
            f"the checkpoint is at step {state.step}: nothing is left to train up to {stop}"
        )
    for step in range(state.step):
        held = lr_factor(spec, step, state.total_steps, state.warmup_steps)
        wanted = lr_factor(spec, step, total_steps, warmup)
        if held != wanted:
            raise CheckpointError(
                f"the checkpoint was trained on another LR schedule (at step {step}: factor {held:.4g}, "
                f"this run's {wanted:.4g}); a branch resumes only from a step before its own decay starts, "
                "with the same warmup"
            )


def _divergence(losses: list[float], since: int) -> str | None:
    """Why the run diverged, judging the losses from index `since` on, or None."""
    for step, loss in enumerate(losses[since:], start=since + 1):
        if not math.isfinite(loss):
            return f"training loss became {loss} at step {step}"
        if loss > BLOWUP_FACTOR * losses[0]:
            return f"training loss blew up to {loss:.3g} at step {step} (first step: {losses[0]:.3g})"
    return None


@torch.no_grad()
def evaluate(loss: LossFn, corpus: Corpus, spec: ArchitectureSpec, device: torch.device) -> float:
    """Mean next-token loss over the fixed validation windows, by the loss the run trains with."""
    total, count = 0.0, 0
    for x_np, y_np in corpus.val_batches(spec.batch_size, spec.context_length, spec.training.eval_tokens):
        x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
        with autocast(device):
            total += loss(x, y).item() * y.numel()  # the batch's mean, back to its sum
        count += y.numel()
    return total / count


def _curve(losses: list[float]) -> list[tuple[int, float]]:
    """At most MAX_CURVE_POINTS (step, mean loss over the window ending at step) pairs, all finite.

    A diverged run's last losses may be NaN or inf: the window holding them is dropped, not averaged
    into a NaN that JSON carries as null and the client's float field then refuses."""
    stride = max(1, math.ceil(len(losses) / MAX_CURVE_POINTS))
    windows = (
        (min(end, len(losses)), float(np.mean(losses[end - stride : end])))
        for end in range(stride, len(losses) + stride, stride)
    )
    return [(step, loss) for step, loss in windows if math.isfinite(loss)]
