"""Load test of `POST /v1/predictions` (cached fit) against the trivial `/healthz` of the same server.

    python bench/api_load.py [--connections 64] [--seconds 10] [--rounds 3] [--workers N]

The server is `mupredict serve` (uvicorn) in its own process over a SQLite file holding two fitted
architectures; the load comes from `wrk` (Debian package `wrk`), a separate process on loopback, with a
fixed number of keep-alive connections. Both endpoints are measured in the same run, in alternating
rounds, so the ratio compares like with like. Targets: predictions reach ≥ 50 % of the trivial endpoint's
throughput, with p99 latency under 50 ms at 64 connections.

The server runs as a busy API would be deployed: one uvicorn worker per core (the default here) and no
per-request access log (`mupredict serve --no-access-log`; a proxy in front keeps that log). Both apply
to both endpoints; `--workers 1 --access-log` measures the single-process default of `mupredict serve`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session  # noqa: E402

from app import architectures, migrate, queue  # noqa: E402
from app.db import make_engine  # noqa: E402
from tests.app.api_helpers import finish_runs, spec_dict  # noqa: E402
from trainer import ArchitectureSpec  # noqa: E402

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests":%d,"seconds":%.3f,"errors":%d,"non_2xx":%d,"p50_ms":%.3f,"p99_ms":%.3f}}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str) -> int:
    """Two architectures with a finished, law-following proxy ladder; returns the first id."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    ids = []
    with Session(engine) as session:
        for name, activation in (("gelu", "gelu"), ("swiglu", "swiglu")):
            spec = ArchitectureSpec.model_validate(spec_dict(name, activation=activation))
            arch, _ = architectures.register(session, spec)
            queue.enqueue_sweep(
                session,
                arch,
                spec.proxy_widths,
                [0, 1],
                spec.training.steps,
                depth=spec.n_layers,
                lr=spec.training.lr,
                lr_source="spec",
            )
            session.commit()
            ids.append(arch.id)
    for arch_id in ids:
        finish_runs(engine, arch_id)
    engine.dispose()
    return ids[0]


def wrk(url: str, method: str, body: str, connections: int, seconds: int, workdir: Path) -> dict[str, float]:
    script = workdir / f"{method.lower()}.lua"
    script.write_text(WRK_SCRIPT.format(method=method, body=body))
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


ENDPOINTS = (("GET /healthz", "/healthz", "GET"), ("POST /v1/predictions", "/v1/predictions", "POST"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured round")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per endpoint, alternating")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes (default: cores)"
    )
    parser.add_argument("--access-log", action="store_true", help="keep uvicorn's per-request access log")
    parser.add_argument("--out", type=Path, default=None, help="Also write the figures to this file.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("this benchmark drives load with wrk: apt-get install wrk")

    rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in ENDPOINTS}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'bench.db'}"
        arch_id = seed(url)
        port = free_port()
        env = {**os.environ, "MUPREDICT_DATABASE_URL": url}
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(args.workers)]
            + ([] if args.access_log else ["--no-access-log"]),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            body = json.dumps({"architecture_id": arch_id, "n_params": 1e8})
            first = httpx.post(
                f"{base}/v1/predictions", content=body, headers={"Content-Type": "application/json"}
            )
            first.raise_for_status()  # also warms the fit cache, as any served prediction would
            payloads = {"GET": "", "POST": body}
            for _, path, method in ENDPOINTS:
                # A short unmeasured round first: opening the connections and the first requests'
                # one-off costs (in every worker process) would otherwise land in the measured tail.
                wrk(f"{base}{path}", method, payloads[method], args.connections, 2, workdir)
            # The endpoints alternate round by round, so a slow spell of a shared machine hits both,
            # and each figure is the median over rounds.
            for _ in range(args.rounds):
                for name, path, method in ENDPOINTS:
                    target = f"{base}{path}"
                    rounds[name].append(
                        wrk(target, method, payloads[method], args.connections, args.seconds, workdir)
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)

    median = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rounds.items()
    }
    predict = median["POST /v1/predictions"]
    ratios = [p["rps"] / t["rps"] for t, p in zip(*rounds.values(), strict=True)]
    ratio = statistics.median(ratios)
    verdict = {True: "PASS", False: "FAIL"}
    lines = [
        f"api_load: {args.connections} connections, {args.rounds} alternating rounds of {args.seconds} s per "
        f"endpoint, {args.workers} uvicorn worker(s), access log {'on' if args.access_log else 'off'}, "
        f"{os.cpu_count()} CPU cores shared with the load generator (wrk: a separate process, loopback)",
        f"command: python bench/api_load.py --connections {args.connections} --seconds {args.seconds} "
        f"--rounds {args.rounds} --workers {args.workers}{' --access-log' if args.access_log else ''}",
        f"{'endpoint':<31}{'req/s':>8}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'non-2xx':>9}",
    ]
    for name, runs in rounds.items():
        for i, r in enumerate([*runs, median[name]]):
            label = f"  round {i + 1}" if i < len(runs) else f"{name} (median)"
            lines.append(
                f"{label:<31}{r['rps']:>8.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
                f"{r['errors']:>8.0f}{r['non_2xx']:>9.0f}"
            )
    lines.append(
        f"throughput ratio predictions / trivial, per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"median {ratio:.2f} (target ≥ 0.50) -> {verdict[ratio >= 0.5]}"
    )
    lines.append(
        f"predictions p99, median over rounds: {predict['p99_ms']:.1f} ms (target < 50 ms) -> "
        f"{verdict[predict['p99_ms'] < 50]}"
    )
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
