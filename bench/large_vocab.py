"""Large vocabularies at tiny widths: tokens/s and peak memory with the chunked loss and without.

    python bench/large_vocab.py            # -> bench/results/large_vocab_cpu.txt

Each (width, vocabulary, loss) runs in a fresh process, so its peak resident memory is its own. The
protocol and pass criteria are in bench/PROTOCOL.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer import ArchitectureSpec
    from trainer.step import TrainStep

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIDTHS = (16, 64, 256)
VOCABS = (256, 50_257, 128_256)
CONTEXT, BATCH, TIMED = 256, 8, 3


def cpu_step(spec: ArchitectureSpec, width: int) -> TrainStep:
    """The trainer's own step for `spec` at `width` on the CPU, with the loss `train` would pick."""
    import torch

    from trainer import build_model, make_optimizer
    from trainer.loss import loss_for
    from trainer.step import TrainStep

    torch.manual_seed(0)
    model = build_model(spec, width)
    return TrainStep(
        loss_for(model, model, BATCH * CONTEXT, compiling=False),
        model.parameters(),
        make_optimizer(model, spec),
        micro_batch=BATCH,
        grad_clip=1.0,
        device=torch.device("cpu"),
    )


def one(width: int, vocab: int, chunked: bool) -> dict[str, float]:
    """One configuration, in this process: tokens/s, peak RSS (MiB) and the first timed step's loss."""
    import torch

    import trainer.loss as loss_module
    from trainer import ArchitectureSpec

    if not chunked:
        loss_module.LOGITS_BUDGET_BYTES = 1 << 62  # never chunk
    spec = ArchitectureSpec.model_validate(
        {
            "name": "vocab",
            "n_layers": 1,
            "head_dim": 16,
            "context_length": CONTEXT,
            "tie_embeddings": False,
            "training": {"batch_tokens": BATCH * CONTEXT},
            # The bench feeds random ids; the spec only needs a vocabulary of this size.
            "dataset": {"source": "ids", "tokenizer": "prepared", "vocab_size": vocab}
            if vocab != 256
            else {},
        }
    )
    step = cpu_step(spec, width)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, vocab, (BATCH, CONTEXT + 1), generator=generator) for _ in range(TIMED + 1)]
    step(batches[0][:, :-1], batches[0][:, 1:])  # warm-up
    start = time.perf_counter()
    losses = [float(step(b[:, :-1], b[:, 1:])) for b in batches[1:]]
    seconds = time.perf_counter() - start
    return {
        "tokens_per_second": TIMED * BATCH * CONTEXT / seconds,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": losses[0],
        "chunked": float(loss_module.chunk_tokens(BATCH * CONTEXT, vocab) is not None),
    }


def sampling_share() -> str:
    """Sampling one batch from a prepared corpus against one training step at width 64 (bytes)."""
    import numpy as np
    import torch

    from trainer import ArchitectureSpec, DatasetSpec, load_corpus
    from trainer.batches import batch_rng
    from trainer.prepare import prepare

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source"
        source.mkdir()
        rng = np.random.default_rng(0)
        for i in range(200):  # 200 documents of 20 kB
            (source / f"{i}.txt").write_bytes(bytes(rng.integers(32, 127, 20_000, dtype=np.uint8)))
        prepare(source, Path(folder) / "out", "byte", val_fraction=0.1, shard_tokens=500_000)
        corpus = load_corpus(
            DatasetSpec(source=str(Path(folder) / "out"), tokenizer="prepared", vocab_size=256)
        )
        start = time.perf_counter()
        for k in range(200):
            corpus.sample_batch(batch_rng(0, k), BATCH, CONTEXT)
        sample = (time.perf_counter() - start) / 200
    spec = ArchitectureSpec.model_validate(
        {
            "name": "s",
            "n_layers": 2,
            "head_dim": 16,
            "context_length": CONTEXT,
            "training": {"batch_tokens": BATCH * CONTEXT},
        }
    )
    step = cpu_step(spec, 64)
    x = torch.randint(0, 256, (BATCH, CONTEXT + 1))
    step(x[:, :-1], x[:, 1:])
    start = time.perf_counter()
    for _ in range(5):
        step(x[:, :-1], x[:, 1:])
    train_step = (time.perf_counter() - start) / 5
    return (
        f"sampling a batch of {BATCH} × {CONTEXT} from a prepared corpus (7 shards): {sample * 1e3:.2f} ms; "
        f"a training step at width 64, depth 2: {train_step * 1e3:.0f} ms; share {sample / train_step:.2%} "
        "(issue 21 target: under 5 %; the trainer draws batches on a background thread besides)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # width,vocab,chunked: run one configuration
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "large_vocab_cpu.txt")
    args = parser.parse_args()
    if args.one:
        width, vocab, chunked = (int(v) for v in args.one.split(","))
        print(json.dumps(one(width, vocab, bool(chunked))))
        return
    lines = [
        f"large vocabularies at tiny widths, measured {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {os.cpu_count()}-core CPU ({platform.machine()}); one block, head 16, context {CONTEXT}, "
        f"{BATCH} sequences per step, untied readout, {TIMED} timed steps after 1 warm-up, a process each",
        f"{'width':>5} {'vocab':>7} | {'whole: tok/s':>12} {'peak MiB':>9} | {'chunked: tok/s':>14} "
        f"{'peak MiB':>9} | {'speed':>6} {'memory':>7} {'loss rel. diff':>14}",
    ]
    verdicts = []
    for width in WIDTHS:
        for vocab in VOCABS:
            runs = {}
            for chunked in (0, 1):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", f"{width},{vocab},{chunked}"],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=1800,
                )
                runs[chunked] = json.loads(out.stdout.strip().splitlines()[-1])
            whole, chunk = runs[0], runs[1]
            speed = chunk["tokens_per_second"] / whole["tokens_per_second"]
            memory = chunk["peak_mib"] / whole["peak_mib"]
            diff = abs(chunk["loss"] - whole["loss"]) / whole["loss"]
            note = "" if chunk["chunked"] else " (not chunked: its logits fit)"
            lines.append(
                f"{width:>5} {vocab:>7} | {whole['tokens_per_second']:>12,.0f} {whole['peak_mib']:>9,.0f} | "
                f"{chunk['tokens_per_second']:>14,.0f} {chunk['peak_mib']:>9,.0f} | {speed:>6.2f} "
                f"{memory:>7.2f} {diff:>14.1e}{note}"
            )
            print(lines[-1], flush=True)
            if vocab == max(VOCABS):
                verdicts.append(memory <= 0.5 and speed >= 0.7 and diff <= 1e-4)
    lines.append(
        f"verdict at vocabulary {max(VOCABS):,} (memory ≤ 0.5×, speed ≥ 0.7×, loss within 1e-4 at every "
        f"width): {'PASS' if all(verdicts) else 'FAIL'}"
    )
    lines.append(sampling_share())
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.write_text(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
