"""``make run-cluster``: a local cluster, the server and the exporter on it; Ctrl-C stops
the exporter, the server, then every cluster node, with nothing logged at error level."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ocs.store.embedded import free_port
from tests.integration.ops.test_make_run import (
    assert_stopped_cleanly,
    ctrl_c,
    make_job,
    wait_ready,
)
from tests.serve_harness import ROOT


def test_make_run_cluster_serves_on_the_cluster_and_stops_in_order(tmp_path: Path) -> None:
    """The node is ready on the cluster (/readyz), `ocs store info` sees 3 primaries with a
    replica each, and SIGINT to make's group stops exporter, server, then the nodes."""
    metrics, export_metrics = free_port(), free_port()
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(
        f"policies: {{dir: '{ROOT / 'policies'}'}}\n"
        f"metrics: {{port: {metrics}}}\n"
        "logging: {format: json}\n"
        "diameter: {enabled: false}\nradius: {enabled: false}\nnchf: {enabled: false}\n"
        f"export: {{output_dir: '{tmp_path / 'export'}', metrics_port: {export_metrics},"
        " max_batch_age: 0.5}\n"
    )
    cluster_dir = tmp_path / "cluster"
    log = tmp_path / "make.log"
    with make_job(log, "run-cluster", f"CONFIG={cfg}", f"CLUSTER_DIR={cluster_dir}") as make:
        wait_ready(make, log, 120, metrics, export_metrics)
        url = (cluster_dir / "url").read_text().strip()
        info = subprocess.run(
            [str(ROOT / ".venv/bin/ocs"), "-c", str(cfg), "store", "info"],
            env={**os.environ, "OCS_REDIS__URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert info.returncode == 0, info.stderr
        assert info.stdout.count("primary 127.0.0.1:") == 3
        pids = [int((d / "server.pid").read_text()) for d in sorted(cluster_dir.glob("node-*"))]
        assert len(pids) == 6
        code = ctrl_c(make, 90)
    assert_stopped_cleanly(code, log.read_text())
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "a cluster node outlived make"
    assert not (cluster_dir / "url").exists()
