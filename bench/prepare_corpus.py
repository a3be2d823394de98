"""Preparing 1 GB of text: wall time and peak memory of `mupredict data prepare`, byte and BPE.

    python bench/prepare_corpus.py            # -> bench/results/prepare_corpus_cpu.txt

Protocol and pass criteria: bench/PROTOCOL.md. The source and the prepared corpora are written under
--work (default: a temporary folder, removed afterwards).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_BYTES = 10**9


def make_source(folder: Path) -> tuple[int, int]:
    """Copies of the stdlib's .py files, each file headed by its copy's number, up to TARGET_BYTES."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    total = count = copy = 0
    while total < TARGET_BYTES:
        for path in files:
            data = f"# copy {copy}\n".encode() + path.read_bytes()
            (folder / f"{copy:03d}-{count:07d}.py").write_bytes(data)
            total, count = total + len(data), count + 1
            if total >= TARGET_BYTES:
                break
        copy += 1
    return total, count


def timed(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the child, and its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own resource usage
        seconds = time.perf_counter() - start
        log.seek(0)
        output = log.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "prepare_corpus_cpu.txt")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="prepare-bench-"))
    try:
        source = work / "source"
        source.mkdir(parents=True, exist_ok=True)
        total, count = make_source(source)
        lines = [
            f"preparing a corpus, measured {time.strftime('%Y-%m-%d %H:%M')}",
            f"machine: {os.cpu_count()}-core CPU ({platform.machine()}); source: {total:,} bytes in "
            f"{count:,} files (copies of the Python stdlib's .py files)",
        ]
        # The BPE's tokenizer.json, trained on one copy's worth (not timed).
        sample = work / "sample"
        sample.mkdir(exist_ok=True)
        for path in sorted(source.glob("000-*"))[:4000]:
            shutil.copy(path, sample / path.name)
        prepare = [sys.executable, "-m", "app", "data", "prepare"]
        subprocess.run(
            [*prepare, str(sample), "--tokenizer", "bpe:32768", "--out", str(work / "bpe-sample")],
            check=True, capture_output=True,
        )  # fmt: skip
        tokenizer = next((work / "bpe-sample").glob("shards-*/tokenizer.json"))
        verdicts = []
        for name, choice in (("byte", "byte"), ("BPE 32,768 (tokenizer.json)", str(tokenizer))):
            out = work / f"out-{len(verdicts)}"
            command = [*prepare, str(source), "--tokenizer", choice, "--out", str(out)]
            seconds, peak, output = timed(command)
            again, _, output_again = timed(command)
            no_op = "already prepared" in output_again
            summary = output.strip().splitlines()[-2] if output.strip() else ""
            lines.append(
                f"{name}: {seconds:.0f} s ({total / seconds / 1e6:.1f} MB/s), peak memory {peak:,.0f} MiB; "
                f"re-run {again:.1f} s ({'a no-op' if no_op else 'NOT a no-op'})"
            )
            lines.append(f"    {summary}")
            verdicts.append(seconds < 600 and peak < 2048 and again < 10 and no_op)
            print("\n".join(lines[-2:]), flush=True)
        lines.append(
            "verdict (each under 10 min and 2 GB, re-runs under 10 s and no-ops): "
            + ("PASS" if all(verdicts) else "FAIL")
        )
        text = "\n".join(lines) + "\n"
        print(text, end="")
        args.out.write_text(text)
        print(f"written to {args.out}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
