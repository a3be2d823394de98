"""Training throughput of the μP model against a plain PyTorch GPT of the same shape, in one run.

    python bench/trainer_throughput.py                 # -> bench/results/trainer_throughput_cpu.txt
    python bench/trainer_throughput.py --profile cuda  # a GPU -> bench/results/trainer_throughput_cuda.txt

Both models run the trainer's own training step (trainer/step.py: forward under bf16 autocast on CUDA,
fp32 cross-entropy, backward, clip, AdamW, fused on CUDA) on the same batches, in alternating rounds so
that load from other processes hits both alike; the figure per model is its fastest round (as timeit
does: slower rounds measure the other processes, not the model), the median is printed next to it. The
plain model (trainer/reference.py) has no multipliers, one AdamW group and PyTorch's own modules. On
CUDA the bench then runs `trainer.train` itself at the same shape (torch.compile by default, batches
prefetched on a thread, losses read every 10 steps) and prints the throughput and MFU it reports.
Targets (bench/PROTOCOL.md): μP / plain ≥ 0.97 in tokens/s; on CUDA, MFU ≥ 50 % at width 1024,
depth 8, context 1024, bf16.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer import ArchitectureSpec, build_model, load_corpus, make_optimizer, train  # noqa: E402
from trainer.accounting import flops_per_token, peak_flops  # noqa: E402
from trainer.batches import batch_rng  # noqa: E402
from trainer.loss import logits_loss  # noqa: E402
from trainer.reference import PlainGPT  # noqa: E402
from trainer.step import TrainStep  # noqa: E402

PROFILES = {
    # width, depth, context, sequences per step, timed steps per round
    "cpu": {"width": 256, "n_layers": 4, "context_length": 256, "batch": 8, "steps": 8},
    "cuda": {"width": 1024, "n_layers": 8, "context_length": 1024, "batch": 16, "steps": 20},
}
TARGET_RATIO = 0.97
TARGET_MFU = 0.50
TRAIN_STEPS = 60  # trainer.train's own run on CUDA: its first step (compilation) is not timed


def timed_round(
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batches: list, device: torch.device
) -> float:
    """Seconds for one pass over `batches`, synchronised on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()}-core CPU ({cpu}), {torch.get_num_threads()} torch threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--rounds", type=int, default=7, help="Alternating timed rounds per model.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's).")
    parser.add_argument("--no-compile", action="store_true", help="CUDA profile: skip torch.compile.")
    parser.add_argument(
        "--batch", type=int, default=None, help="Sequences per step (default: the profile's)."
    )
    parser.add_argument(
        "--attention",
        choices=["auto", "cudnn", "flash"],
        default="auto",
        help="CUDA: the SDPA kernel (auto: PyTorch's choice; cudnn or flash: that one alone).",
    )
    parser.add_argument("--out", type=Path, default=None, help="Results file (default: bench/results/…).")
    args = parser.parse_args()
    profile = dict(PROFILES[args.profile])
    if args.batch:
        profile["batch"] = args.batch
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.profile)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("the cuda profile needs a GPU: run it on a CUDA machine")
        torch.backends.cuda.matmul.allow_tf32 = True
        if args.attention != "auto":  # process-wide, before any compilation
            torch.backends.cuda.enable_cudnn_sdp(args.attention == "cudnn")
            torch.backends.cuda.enable_flash_sdp(args.attention == "flash")
            torch.backends.cuda.enable_mem_efficient_sdp(False)
            torch.backends.cuda.enable_math_sdp(False)
    compile_model = device.type == "cuda" and not args.no_compile
    width = profile["width"]
    spec = ArchitectureSpec.model_validate(
        {
            "name": f"throughput-{args.profile}",
            "n_layers": profile["n_layers"],
            "head_dim": 64,
            "context_length": profile["context_length"],
            "parametrization": {"base_width": 128},  # width ≠ base: every μP multiplier is live
            "training": {"batch_tokens": profile["batch"] * profile["context_length"]},
            "proxy_widths": [width],
        }
    )
    corpus = load_corpus(spec.dataset)
    batches = []
    for i in range(profile["steps"]):
        x, y = corpus.sample_batch(batch_rng(0, i), profile["batch"], profile["context_length"])
        batches.append((torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)))

    torch.manual_seed(0)
    mup_model = build_model(spec, width).to(device)
    plain_model = PlainGPT(spec, width).to(device)
    t = spec.training
    fused = device.type == "cuda"
    micro = profile["batch"]  # one micro-batch: the step the trainer runs when the batch fits
    steps = {
        "mup": TrainStep(
            logits_loss(torch.compile(mup_model) if compile_model else mup_model),
            mup_model.parameters(),
            make_optimizer(mup_model, spec),
            micro_batch=micro,
            grad_clip=t.grad_clip,
            device=device,
        ),
        "plain": TrainStep(
            logits_loss(torch.compile(plain_model) if compile_model else plain_model),
            plain_model.parameters(),
            torch.optim.AdamW(plain_model.parameters(), lr=t.lr, betas=t.betas, fused=fused),
            micro_batch=micro,
            grad_clip=t.grad_clip,
            device=device,
        ),
    }
    for name, step in steps.items():  # warm-up: allocator, kernels, compilation
        print(f"warming up {name} …", flush=True)
        timed_round(step, batches[:3], device)
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            seconds[name].append(timed_round(step, batches, device))

    tokens = profile["steps"] * profile["batch"] * profile["context_length"]
    rate = {name: tokens / min(s) for name, s in seconds.items()}
    median = {name: tokens / statistics.median(s) for name, s in seconds.items()}
    flops = flops_per_token(spec, width)
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    lines = [
        f"trainer throughput, {args.profile} profile, measured {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine(device)}; torch {torch.__version__}",
        f"shape: width {width}, depth {spec.n_layers}, head_dim {spec.head_dim}, context "
        f"{spec.context_length}, batch {profile['batch']} sequences, vocab {spec.vocab_size}"
        + (
            f", bf16 autocast, fused AdamW, SDPA ({args.attention})"
            + (", torch.compile" if compile_model else "")
            if fused
            else ""
        ),
        f"{args.rounds} alternating rounds of {profile['steps']} steps each; fastest round per model",
    ]
    for name, label in (
        ("mup", "μP model (trainer.build_model)"),
        ("plain", "plain PyTorch (trainer/reference)"),
    ):
        rounds = ", ".join(f"{tokens / s:,.0f}" for s in seconds[name])
        lines.append(
            f"  {label:36s} {rate[name]:>10,.0f} tokens/s (median {median[name]:,.0f}; rounds: {rounds})"
        )
        if peak is not None:
            lines.append(f"  {'':36s} MFU {rate[name] * flops / peak:.1%} of {peak / 1e12:.0f} TFLOP/s bf16")
    ratio = rate["mup"] / rate["plain"]
    lines.append(
        f"ratio μP / plain: {ratio:.3f} fastest rounds, {median['mup'] / median['plain']:.3f} medians "
        f"(target ≥ {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'})"
    )
    if peak is not None:
        mfu = rate["mup"] * flops / peak
        lines.append(
            f"μP MFU: {mfu:.1%} (target ≥ {TARGET_MFU:.0%}: {'met' if mfu >= TARGET_MFU else 'NOT met'})"
        )
        del steps, mup_model, plain_model  # free the GPU for the trainer's own run
        torch.cuda.empty_cache()
        print("trainer.train at the same shape …", flush=True)
        result = train(spec, width, steps=TRAIN_STEPS, device=str(device), compile=not args.no_compile)
        lines.append(
            f"trainer.train end to end ({TRAIN_STEPS} steps, the first untimed; compile "
            f"{'off' if args.no_compile else 'on by default'}, batches prefetched): "
            f"{result.tokens_per_second:,.0f} tokens/s, MFU {result.mfu or 0:.1%}; "
            f"final train loss {result.final_train_loss}, wall {result.wall_seconds:.0f} s"
        )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = args.out or ROOT / "bench" / "results" / f"trainer_throughput_{args.profile}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
