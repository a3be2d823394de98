"""μP transfer, measured the way the product measures it: a thin driver of trainer.tuning.

    python bench/mup_transfer.py --profile cpu   # 2-core CPU, widths 16…128  -> results/mup_transfer_cpu.txt
    python bench/mup_transfer.py --profile gpu   # one CUDA GPU, 256…1024     -> results/mup_transfer_gpu.txt

For `mup` and `sp` versions of one recipe (nothing else differs), the LR is tuned at the base width and at
×4/×8 (×2/×4 on the GPU) with the product's bracketed grid; the report gives η* with its interval per width,
the slope of log2 η* against log2 width with its interval, the verdict, and every curve. Protocol and pass
criteria: bench/PROTOCOL.md. Finished runs are cached next to the report (delete the cache to retrain).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tuning_runs import CachedTuner, curve_lines, default_jobs, write_report  # noqa: E402
from trainer import ArchitectureSpec  # noqa: E402
from trainer.tuning import Shape, TuningPlan  # noqa: E402
from trainer.tuning_result import TuningResult  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_SLOPE = 0.1  # μP: |slope| ≤ 0.1 with its interval including 0 (bench/PROTOCOL.md)


@dataclass(frozen=True)
class Profile:
    spec: dict[str, object]
    base_width: int
    widths: tuple[int, ...]
    device: str
    jobs: int


PROFILES = {
    # The accuracy backtest's CPU recipe (bench/accuracy.py), so its ladder can reuse the μP base curve.
    "cpu": Profile(
        spec={
            "name": "accuracy-cpu",
            "n_layers": 2,
            "head_dim": 8,
            "context_length": 64,
            "parametrization": {"base_width": 16},
            "training": {"steps": 1500, "batch_tokens": 1024, "lr": 0.01},
        },
        base_width=16,
        widths=(64, 128),
        device="cpu",
        jobs=default_jobs(),
    ),
    "gpu": Profile(
        spec={
            "name": "transfer-gpu",
            "n_layers": 4,
            "head_dim": 64,
            "context_length": 256,
            "parametrization": {"base_width": 256},
            "proxy_widths": [256, 512, 1024],
            # Short enough for one 8-minute call on a lent GPU: ~300 runs-worth of launches dominate.
            "training": {"steps": 300, "batch_tokens": 16384, "lr": 0.01},
        },
        base_width=256,
        widths=(512, 1024),
        device="cuda",
        jobs=6,
    ),
}


def spec_for(profile: Profile, mode: str) -> ArchitectureSpec:
    spec = json.loads(json.dumps(profile.spec))
    spec["parametrization"]["mode"] = mode
    return ArchitectureSpec.model_validate(spec)


def plan_for(profile: Profile, spec: ArchitectureSpec) -> TuningPlan:
    return TuningPlan(
        center_lr=spec.training.lr, base=Shape(profile.base_width, spec.n_layers), widths=profile.widths
    )


def machine(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()}-core CPU ({cpu}), torch {torch.__version__}"


def report(mode: str, result: TuningResult) -> tuple[list[str], bool | None]:
    lines = [f"{mode}: tuning {result.status}" + (f" ({result.reason})" if result.reason else "")]
    for curve in result.curves:
        lines += curve_lines(curve, f"width {curve.shape.width:5d}")
    transfer = result.transfer.get("width")
    if transfer is None or transfer.slope is None or transfer.lower is None or transfer.upper is None:
        lines.append("  transfer: not measured")
        return lines, None
    ratio = f"{transfer.curvature_ratio:.2f}" if transfer.curvature_ratio is not None else "n/a"
    lines.append(
        f"  slope of log2 η* per doubling of width: {transfer.slope:+.3f}, 90% interval "
        f"[{transfer.lower:+.3f}, {transfer.upper:+.3f}]; spread {transfer.spread_log2:.2f} log2; "
        f"curvature ×{ratio} from the base to the widest"
    )
    lines.append(f"  verdict: {transfer.verdict} ({transfer.reason})")
    if mode == "mup":
        ok = abs(transfer.slope) <= TARGET_SLOPE and transfer.lower <= 0 <= transfer.upper
        verdict = "PASS" if ok else "FAIL"
        lines.append(f"  criterion 1 (|slope| ≤ {TARGET_SLOPE} and the interval includes 0): {verdict}")
    else:
        ok = not transfer.lower <= 0 <= transfer.upper
        lines.append(f"  criterion 2 (the interval excludes 0): {'PASS' if ok else 'FAIL'}")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--modes", default="mup,sp", help="Comma-separated parametrizations to check.")
    parser.add_argument("--jobs", type=int, default=None, help="Runs at once (default: the profile's).")
    parser.add_argument("--out", type=Path, default=None, help="Report file (default bench/results/).")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    out = args.out or RESULTS / f"mup_transfer_{args.profile}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    tuner = CachedTuner(
        RESULTS / f"tuning_{args.profile}.runs.jsonl", profile.device, args.jobs or profile.jobs
    )
    started = time.perf_counter()
    lines = [
        f"μP transfer (bench/mup_transfer.py --profile {args.profile}), "
        f"measured {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine(profile.device)}; {tuner.jobs} runs at once",
        f"recipe: {json.dumps(profile.spec)}",
        f"plan: base width {profile.base_width}, widths {list(profile.widths)}, grid ×√2 around the "
        "spec's lr (5 points, ≤ 4 extensions), seeds 0 and 1, 90% intervals",
        "",
    ]
    verdicts = []
    for mode in args.modes.split(","):
        spec = spec_for(profile, mode)
        result = tuner.tune(spec, plan_for(profile, spec))
        body, ok = report(mode, result)
        verdicts.append(ok)
        lines += [*body, ""]
        print("\n".join(body), flush=True)
    write_report(tuner, lines, out, started, ROOT)
    return 0 if all(v is not False for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
