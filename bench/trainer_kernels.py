"""Where the μP training step's GPU time goes, and which compile settings move its MFU (issue 15, point 6).

    for v in base cdt full hd128 autotune; do timeout 200 python bench/trainer_kernels.py $v; done  # one GPU

Exploratory, beside bench/trainer_throughput.py (whose protocol and target it does not change): each
variant trains the throughput bench's CUDA shape (width 1024, depth 8, context 1024, 16 sequences, bf16
autocast, μP with base width 128) through the trainer's own step for 5 rounds of 20 steps after 3
warm-up steps, in its own process (inductor's settings are process-wide), and prints its fastest round.
Variants: base (torch.compile as the trainer does it); cdt (inductor's coordinate-descent tuning of its
Triton kernels); full (the cross-entropy compiled with the model); hd128 (head size 128 instead of 64:
another model, for scale only); autotune (mode "max-autotune-no-cudagraphs": Triton matmul templates
against cuBLAS). `base` then profiles 4 steps with torch.profiler and sums the GPU time per kernel class.
Environment: BATCH, W, CTX, DEPTH change the shape; SMOKE=1 runs on the CPU (a check of the script).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch._inductor.config as inductor_config
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer import ArchitectureSpec, build_model, load_corpus, make_optimizer  # noqa: E402
from trainer.accounting import flops_per_token, peak_flops  # noqa: E402
from trainer.batches import batch_rng  # noqa: E402
from trainer.loss import logits_loss  # noqa: E402
from trainer.step import TrainStep  # noqa: E402

CLASSES = (  # kernel-name substrings -> class, first match wins
    ("gemm", ("gemm", "nvjet", "cutlass", "sm90_x", "cublas")),
    ("attention", ("flash", "fmha", "attention", "cudnn")),
    ("optimizer", ("adam", "multi_tensor", "foreach", "norm_kernel", "lpnorm")),
    ("triton", ("triton",)),
)


def kernel_class(name: str) -> str:
    lowered = name.lower()
    return next((c for c, keys in CLASSES if any(k in lowered for k in keys)), "other")


def main(variant: str) -> None:
    batch = int(os.environ.get("BATCH", "16"))
    width = int(os.environ.get("W", "1024"))
    context = int(os.environ.get("CTX", "1024"))
    torch.backends.cuda.matmul.allow_tf32 = True
    if variant == "cdt":
        inductor_config.coordinate_descent_tuning = True
    spec = ArchitectureSpec.model_validate(
        {
            "name": "kernels",
            "n_layers": int(os.environ.get("DEPTH", "8")),
            "head_dim": 128 if variant == "hd128" else 64,
            "context_length": context,
            "parametrization": {"base_width": 128},
            "training": {"batch_tokens": batch * context},
            "proxy_widths": [width],
        }
    )
    device = torch.device("cpu" if os.environ.get("SMOKE") else "cuda")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    corpus = load_corpus(spec.dataset)
    batches = []
    for i in range(20):
        x, y = corpus.sample_batch(batch_rng(0, i), batch, context)
        batches.append((torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)))
    torch.manual_seed(0)
    model = build_model(spec, width).to(device)
    if variant == "full":
        loss = torch.compile(lambda x, y: F.cross_entropy(model(x).float().flatten(0, 1), y.flatten()))
    else:
        mode = "max-autotune-no-cudagraphs" if variant == "autotune" else None
        loss = logits_loss(torch.compile(model, mode=mode))
    optimizer = make_optimizer(model, spec)
    step = TrainStep(loss, model.parameters(), optimizer, micro_batch=batch, grad_clip=1.0, device=device)
    started = time.perf_counter()
    for x, y in batches[:3]:
        step(x, y)
    sync()
    warm_up = time.perf_counter() - started
    seconds = []
    for _ in range(5):
        sync()
        started = time.perf_counter()
        for x, y in batches:
            step(x, y)
        sync()
        seconds.append(time.perf_counter() - started)
    tokens = 20 * batch * context
    rate = tokens / min(seconds)
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else 1e12
    mfu = rate * flops_per_token(spec, width) / (peak or 1e12)
    print(
        f"RESULT {variant} batch {batch}: {rate:,.0f} tok/s "
        f"(median {tokens / statistics.median(seconds):,.0f}) "
        f"MFU {mfu:.1%} compile+warmup {warm_up:.0f}s",
        flush=True,
    )
    if variant != "base":
        return
    from torch.profiler import ProfilerActivity, profile

    activity = ProfilerActivity.CUDA if device.type == "cuda" else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        for x, y in batches[:4]:
            step(x, y)
        sync()

    def self_time(event: object) -> float:
        name = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        return float(getattr(event, name))

    rows = sorted(prof.key_averages(), key=self_time, reverse=True)
    total = sum(self_time(e) for e in rows)
    print(f"profile: {total / 4 / 1000:.2f} ms GPU per step (self time summed)")
    by_class: dict[str, float] = {}
    for e in rows:
        by_class[kernel_class(e.key)] = by_class.get(kernel_class(e.key), 0.0) + self_time(e)
    for name, value in sorted(by_class.items(), key=lambda kv: -kv[1]):
        print(f"  {name:10s} {value / 4 / 1000:7.2f} ms/step  {value / total:.1%}")
    for e in rows[:30]:
        print(f"  {self_time(e) / 4 / 1000:7.3f} ms/step  x{e.count // 4:<4d} {e.key[:110]}")


if __name__ == "__main__":
    for name in sys.argv[1:] or ["base"]:
        if name not in ("base", "cdt", "full", "hd128", "autotune"):
            sys.exit(f"unknown variant {name!r}: base, cdt, full, hd128 or autotune")
    if len(sys.argv) > 2:
        sys.exit("one variant per process (inductor's settings are process-wide): run it once per variant")
    main(sys.argv[1] if len(sys.argv) > 1 else "base")
