"""Load test of the HTTP API: `POST /v1/predictions` (cached fit) against the trivial `/healthz` of the
same server, or (`--suite reads`) the read routes a dashboard and notebooks poll.

    python bench/api_load.py [--connections 64] [--seconds 10] [--rounds 3] [--workers N]
    python bench/api_load.py --suite reads [--database sqlite|postgres] [--out FILE]

The server is `mupredict serve` (uvicorn) in its own process over a SQLite file holding two fitted
architectures; the load comes from `wrk` (Debian package `wrk`), a separate process on loopback, with a
fixed number of keep-alive connections. Both endpoints are measured in the same run, in alternating
rounds, so the ratio compares like with like. Targets: predictions reach ≥ 50 % of the trivial endpoint's
throughput, with p99 latency under 50 ms at 64 connections. The `reads` suite measures `GET /v1/runs?limit=1`,
`GET /v1/architectures` and `GET /v1/sweeps/{id}` beside `/healthz`; targets: no errors and p99 under
100 ms at 64 connections (issue 14: before its fix these stalled ~30 s and answered 500). With
`--database postgres` the server runs on a fresh database on the PostgreSQL at
`MUPREDICT_TEST_POSTGRES_URL`, dropped afterwards. Protocols and pass criteria: bench/PROTOCOL.md.

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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app import architectures, migrate, queue  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.models import Sweep  # noqa: E402
from tests.app.api_helpers import finish_runs, spec_dict  # noqa: E402
from trainer import ArchitectureSpec  # noqa: E402

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests":%d,"seconds":%.3f,"errors":%d,"timeouts":%d,"non_2xx":%d,"p50_ms":%.3f,"p99_ms":%.3f}}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in `workdir`, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    server = os.environ.get("MUPREDICT_TEST_POSTGRES_URL")
    if not server:
        sys.exit(
            "--database postgres needs MUPREDICT_TEST_POSTGRES_URL (postgresql+psycopg://root@127.0.0.1/test)"
        )
    name = f"mupredict_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str) -> tuple[int, int]:
    """Two architectures with a finished, law-following proxy ladder; returns the first's id and the id
    of its sweep."""
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
    with Session(engine) as session:
        sweep_id = session.scalars(select(Sweep.id).where(Sweep.architecture_id == ids[0])).one()
    engine.dispose()
    return ids[0], sweep_id


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


# Per suite: (name, path, method), the first being the reference; `{sweep}` is the seeded sweep's id.
SUITES = {
    "predictions": (("GET /healthz", "/healthz", "GET"), ("POST /v1/predictions", "/v1/predictions", "POST")),
    "reads": (
        ("GET /healthz", "/healthz", "GET"),
        ("GET /v1/runs?limit=1", "/v1/runs?limit=1", "GET"),
        ("GET /v1/architectures", "/v1/architectures", "GET"),
        ("GET /v1/sweeps/{id}", "/v1/sweeps/{sweep}", "GET"),
    ),
}
READS_P99_MS = 100.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", choices=sorted(SUITES), default="predictions")
    parser.add_argument(
        "--database", choices=("sqlite", "postgres"), default="sqlite", help="postgres: a fresh database"
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

    endpoints = SUITES[args.suite]
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in endpoints}
    with tempfile.TemporaryDirectory() as tmp, database(args.database, Path(tmp)) as url:
        workdir = Path(tmp)
        arch_id, sweep_id = seed(url)
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
            targets = {name: f"{base}{path.format(sweep=sweep_id)}" for name, path, _ in endpoints}
            payloads = {"GET": "", "POST": body}
            for name, _, method in endpoints:
                # Every route answers once before the load, as it must (and the prediction warms the fit
                # cache, as any served prediction would).
                httpx.request(
                    method,
                    targets[name],
                    content=payloads[method] or None,
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                ).raise_for_status()
            for name, _, method in endpoints:
                # A short unmeasured round first: opening the connections and the first requests'
                # one-off costs (in every worker process) would otherwise land in the measured tail.
                wrk(targets[name], method, payloads[method], args.connections, 2, workdir)
            # The endpoints alternate round by round, so a slow spell of a shared machine hits all of
            # them, and each figure is the median over rounds.
            for _ in range(args.rounds):
                for name, _, method in endpoints:
                    rounds[name].append(
                        wrk(targets[name], method, payloads[method], args.connections, args.seconds, workdir)
                    )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # requests stuck in a stalled server keep it from exiting
                server.kill()
                server.wait()

    median = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rounds.items()
    }
    command = (
        f"python bench/api_load.py --suite {args.suite} --database {args.database} --connections "
        f"{args.connections} --seconds {args.seconds} --rounds {args.rounds} --workers {args.workers}"
        f"{' --access-log' if args.access_log else ''}"
    )
    lines = [
        f"api_load ({args.suite}, {args.database}): {args.connections} connections, {args.rounds} "
        f"alternating rounds of {args.seconds} s per endpoint, {args.workers} uvicorn worker(s), access log "
        f"{'on' if args.access_log else 'off'}, {os.cpu_count()} CPU cores shared with the load generator "
        "(wrk: a separate process, loopback)",
        f"command: {command}",
        f"{'endpoint':<31}{'req/s':>8}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'non-2xx':>9}",
    ]
    for name, runs in rounds.items():
        for i, r in enumerate([*runs, median[name]]):
            label = f"  round {i + 1}" if i < len(runs) else f"{name} (median)"
            lines.append(
                f"{label:<31}{r['rps']:>8.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
                f"{r['errors']:>8.0f}{r['non_2xx']:>9.0f}"
            )
    verdict = {True: "PASS", False: "FAIL"}
    if args.suite == "predictions":
        predict = median["POST /v1/predictions"]
        ratios = [p["rps"] / t["rps"] for t, p in zip(*rounds.values(), strict=True)]
        ratio = statistics.median(ratios)
        lines.append(
            f"throughput ratio predictions / trivial, per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
            f"median {ratio:.2f} (target ≥ 0.50) -> {verdict[ratio >= 0.5]}"
        )
        lines.append(
            f"predictions p99, median over rounds: {predict['p99_ms']:.1f} ms (target < 50 ms) -> "
            f"{verdict[predict['p99_ms'] < 50]}"
        )
    else:
        for name, _, _ in endpoints[1:]:
            errors = sum(r["errors"] for r in rounds[name])
            timeouts = sum(r["timeouts"] for r in rounds[name])
            non_2xx = sum(r["non_2xx"] for r in rounds[name])
            # A stalled server completes nothing in a round, and wrk then reports no error and no latency.
            fewest = min(r["requests"] for r in rounds[name])
            p99 = median[name]["p99_ms"]
            ok = errors == 0 and non_2xx == 0 and fewest > 0 and p99 < READS_P99_MS
            lines.append(
                f"{name}: over all rounds {errors:.0f} socket errors ({timeouts:.0f} of them wrk's 2 s "
                f"timeout) and {non_2xx:.0f} non-2xx (target 0), {fewest:.0f} answers in the slowest round "
                f"(target > 0); p99 {p99:.1f} ms (target < {READS_P99_MS:.0f} ms) -> {verdict[ok]}"
            )
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
