"""Benchmark of the admin side (issue 14): bulk import rate and the API's latency per call.

    python -m loadtest.admin_bench [--rows 10000] [--calls 300]

Starts its own Redis (the embedded launcher, ``appendfsync always`` as
``ocs serve`` runs by default) and ``ocs serve`` with the admin API in a
temporary directory, then measures:

* ``ocs account import FILE.csv`` of ``--rows`` new accounts (wall time of the
  command, process start included);
* ``POST /accounts:batch`` of ``--rows`` more (wall time of the call);
* sequential calls over one keep-alive connection, ``--calls`` each: GET an
  account, POST a top-up (with an Idempotency-Key), GET its history, GET
  its statement; p50 / p99 / max in milliseconds.

Numbers depend on the machine and what else runs on it: quote them with the
command and the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from ocs.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
        f"max {ordered[-1] * 1000:.2f} ms"
    )


def _config(tmp: Path) -> tuple[Path, int, int]:
    port, metrics = free_port(), free_port()
    cfg = tmp / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp / 'redis'}'}}\n"
        f"policies: {{dir: '{ROOT / 'policies'}'}}\n"
        f"metrics: {{port: {metrics}}}\nlogging: {{format: json, level: warning}}\n"
        f"admin: {{enabled: true, port: {port}, tokens_file: '{tmp / 'tokens.yaml'}'}}\n"
    )
    return cfg, port, metrics


def _ocs(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocs", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def _rows(n: int, prefix: str) -> list[dict[str, str]]:
    return [
        {"identities": f"e164:{prefix}{i:08d}", "plan": "prepaid", "money": "10.00"}
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ocs-admin-bench-") as name:
        tmp = Path(name)
        cfg, port, _ = _config(tmp)
        token = _ocs(cfg, "admin", "token", "add", "bench", "--role", "admin").stdout.strip()
        server = subprocess.Popen(
            [sys.executable, "-m", "ocs", "--config", str(cfg), "serve"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=600,
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/accounts?limit=1")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            print(f"machine: {os.cpu_count()} CPUs; other work on it counts too", flush=True)
            rows = _rows(args.rows, "3361")
            path = tmp / "accounts.csv"
            with open(path, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=["identities", "plan", "money"])
                writer.writeheader()
                writer.writerows(rows)
            t0 = time.perf_counter()
            done = _ocs(cfg, "account", "import", str(path))
            took = time.perf_counter() - t0
            print(
                f"ocs account import: {args.rows} rows in {took:.2f} s "
                f"({args.rows / took:,.0f} accounts/s, process start included): "
                f"{done.stdout.strip().splitlines()[0] if done.stdout else done.stderr.strip()}"
            )
            batch = [
                {
                    "identities": [r["identities"].replace("e164:3361", "e164:3362")],
                    "plan": "prepaid",
                    "money": "10.00",
                }
                for r in rows
            ]
            t0 = time.perf_counter()
            report = client.post("/accounts:batch", json={"accounts": batch}).json()
            took = time.perf_counter() - t0
            print(
                f"POST /accounts:batch: {args.rows} rows in {took:.2f} s "
                f"({args.rows / took:,.0f} accounts/s): created {report['created']}, "
                f"refused {len(report['refused'])}"
            )
            ref = "e164:336100000000"
            timings: dict[str, list[float]] = {
                "GET /accounts/{ref}": [],
                "POST /accounts/{ref}/topups": [],
                "GET /accounts/{ref}/history": [],
                "GET /accounts/{ref}/statement": [],
            }
            for _ in range(args.calls):
                for label in timings:
                    method, path_t = label.split(" ")
                    url = path_t.replace("{ref}", ref)
                    t0 = time.perf_counter()
                    if method == "GET":
                        r = client.get(url)
                    else:
                        r = client.post(
                            url,
                            json={"amount": "0.01"},
                            headers={"Idempotency-Key": uuid.uuid4().hex},
                        )
                    timings[label].append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
            for label, samples in timings.items():
                print(f"{label:<32} {len(samples)} calls: {_percentiles(samples)}")
            print(json.dumps({k: statistics.median(v) * 1000 for k, v in timings.items()}))
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
