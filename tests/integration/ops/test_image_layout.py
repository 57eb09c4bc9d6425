"""The image's layout, built without Docker: non-root user, read-only tree, the server starts.

No Docker daemon runs here (nor in CI on this machine), so the Dockerfile's
runtime stage is read as data (:mod:`tests.integration.ops.dockerfile`) and
laid out under a temporary root: the COPYed folders and the ``ln -s`` of its
RUN lines, everything read-only but the VOLUME, owned by the image's
non-root user (nobody here when the tests run as root). Then the ENTRYPOINT
+ CMD run with the image's ENV, as that user, from a working directory that
is not the configuration's base directory (a systemd unit without
WorkingDirectory: relative paths must not follow it), and the image's own
HEALTHCHECK command probes it. Ports and listen addresses are the only
changes: free loopback ports instead of the defaults.

Regression (issue 15 item 1): ``diameter.data_dir: var/diameter`` was taken
from the working directory, and the non-root container died with
``PermissionError: [Errno 13] Permission denied: 'var'``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocs.store.embedded import free_port
from tests.integration.ops.dockerfile import ROOT, Stage, runtime_stage

NOBODY = 65534
PORT_VARIABLES = (
    "OCS_DIAMETER__PORT",
    "OCS_RADIUS__AUTH_PORT",
    "OCS_RADIUS__ACCT_PORT",
    "OCS_METRICS__PORT",
    "OCS_EXPORT__METRICS_PORT",
)


class Layout:
    """The image's files under ``root``; ``at('/opt/ocs')`` is that path inside it."""

    def __init__(self, root: Path, stage: Stage) -> None:
        self.root = root
        self.stage = stage

    def at(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def build(self) -> None:
        for volume in self.stage.volumes:
            self.at(volume).mkdir(parents=True)
        for source, target in self.stage.copies:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, self.at(target))
        for target, link in self.stage.links:
            self.at(link).parent.mkdir(parents=True, exist_ok=True)
            self.at(link).symlink_to(self.at(target))
        self.at(self.stage.workdir).mkdir(parents=True, exist_ok=True)
        self._permissions()

    def _permissions(self) -> None:
        volumes = [self.at(v) for v in self.stage.volumes]
        for path in [self.root, *self.root.rglob("*")]:
            if path.is_symlink():
                continue
            if any(path == v or v in path.parents for v in volumes):
                if os.geteuid() == 0:
                    os.chown(path, NOBODY, NOBODY)
                continue
            mode = 0o555 if path.is_dir() else 0o444
            path.chmod(mode)  # root-owned and read-only: as in the image

    def unlock(self) -> None:
        for path in [self.root, *self.root.rglob("*")]:
            if not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.chmod(0o755 if path.is_dir() else 0o644)

    def snapshot(self, under: str) -> set[str]:
        top = self.at(under)
        return {str(p.relative_to(top)) for p in top.rglob("*")}


def environment(stage: Stage, layout: Layout) -> tuple[dict[str, str], dict[str, int]]:
    """The image's ENV for a run here: its paths under the layout, free loopback ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCS_")}
    for key, value in stage.env.items():
        if key == "PATH":
            continue  # the image's venv is this test's interpreter
        env[key] = str(layout.at(value)) if value.startswith(("/opt/", "/var/")) else value
    ports = {name: free_port() for name in PORT_VARIABLES}
    env.update({k: str(v) for k, v in ports.items()})
    # Loopback only on this shared machine (the image listens on every address).
    env["OCS_DIAMETER__LISTEN"] = '["127.0.0.1"]'
    env["OCS_RADIUS__LISTEN"] = '["127.0.0.1"]'
    env["OCS_METRICS__HOST"] = "127.0.0.1"
    env["HOME"] = str(layout.at("/var/lib/ocs"))
    return env, ports


def _runs_as_image_user(python: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "pass"], timeout=30, check=False, **as_image_user())
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def interpreter() -> list[str]:
    """This Python with this environment's packages, runnable by the image's user.

    The venv's own interpreter may live where that user cannot reach (a
    pyenv under /root): then the same Python version elsewhere on the
    machine, with the venv's site-packages added (its .pth files too).
    """
    if os.geteuid() != 0:
        return [sys.executable]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    site_dir = sysconfig.get_paths()["purelib"]
    for python in candidates:
        if Path(python).exists() and _runs_as_image_user(python):
            boot = f"import site, runpy; site.addsitedir({site_dir!r}); "
            return [python, "-c", boot + "runpy.run_module('ocs', run_name='__main__')"]
    raise AssertionError(f"no {version} that uid {NOBODY} may run: tried {candidates}")


def command(stage: Stage, layout: Layout, cmd: list[str]) -> list[str]:
    """ENTRYPOINT + CMD, ``ocs`` run by this Python, the image's paths mapped."""
    argv = [*stage.entrypoint, *cmd]
    assert argv[0] == "ocs", argv
    mapped = [str(layout.at(a)) if a.startswith("/opt/") else a for a in argv[1:]]
    python = interpreter()
    return [*python, *mapped] if len(python) > 1 else [*python, "-m", "ocs", *mapped]


def as_image_user() -> dict[str, Any]:
    """Popen arguments that drop root to the image's kind of user (nothing when not root)."""
    if os.geteuid() == 0:
        return {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    return {}


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=out, **as_image_user())


def probe(healthcheck: list[str], port: int, env: dict[str, str]) -> int:
    """Run the image's HEALTHCHECK command against ``port``; its exit status."""
    assert healthcheck[0] == "python" and "/livez" in healthcheck[-1]
    code = healthcheck[-1].replace("9464", str(port))
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return 1
    return done.returncode


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, within: float = 45) -> None:
    deadline = time.monotonic() + within
    while status(port, "/readyz") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"not ready (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.fixture
def layout() -> Iterator[Layout]:
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, closed to the image's user.
    root = Path(tempfile.mkdtemp(prefix="ocs-image-"))
    root.chmod(0o755)
    built = Layout(root / "rootfs", runtime_stage())
    try:
        built.build()
        yield built
    finally:
        built.unlock()
        shutil.rmtree(root, ignore_errors=True)


def test_dockerfile_runtime_stage_is_non_root_multi_stage_and_pinned() -> None:
    """Multi-stage, pinned base, non-root user, one volume, probes /livez."""
    from tests.integration.ops.dockerfile import stages

    all_stages = stages()
    stage = all_stages[-1]
    assert len(all_stages) >= 2 and stage.copies
    base = stage.base
    assert ":" in base and base.split(":")[1][:1].isdigit(), f"unpinned base image {base}"
    assert stage.user not in ("", "root", "0")
    assert stage.volumes == ["/var/lib/ocs"]
    assert "/livez" in stage.healthcheck[-1]
    assert not any(k.endswith("_DIR") for k in stage.env), "state paths come from the config"


def test_the_image_layout_serves_and_exports_as_non_root(layout: Layout) -> None:
    """serve and export start in the read-only tree; state lands only in the volume."""
    stage = layout.stage
    env, ports = environment(stage, layout)
    tree_before = layout.snapshot(stage.workdir)
    logs = layout.root.parent
    server = start(command(stage, layout, stage.cmd), env, layout.root, logs / "serve.log")
    exporter = None
    try:
        wait_ready(ports["OCS_METRICS__PORT"], server, logs / "serve.log")
        assert probe(stage.healthcheck, ports["OCS_METRICS__PORT"], env) == 0
        # The exporter, as its own container would run it: same image, command `export`.
        exporter = start(command(stage, layout, ["export"]), env, layout.root, logs / "export.log")
        wait_ready(ports["OCS_EXPORT__METRICS_PORT"], exporter, logs / "export.log")
    finally:
        codes = [stop(p) for p in (exporter, server) if p is not None]
    serve_log = (logs / "serve.log").read_text()
    assert codes == [0] * len(codes), serve_log[-3000:]
    assert "PermissionError" not in serve_log and "Permission denied" not in serve_log
    assert '"level": "error"' not in serve_log, serve_log[-3000:]
    volume = layout.at("/var/lib/ocs")
    assert (volume / "redis" / "appendonlydir").is_dir()  # the embedded store's data
    assert (volume / "diameter" / "diameter-origin-state-id").is_file()
    assert (volume / "export" / "layout.json").is_file()
    assert layout.snapshot(stage.workdir) - tree_before <= {
        str(Path(link).relative_to(stage.workdir) / p)
        for _, link in stage.links
        for p in layout.snapshot("/var/lib/ocs")
    }, "something was written outside the volume"


def test_a_state_path_outside_the_volume_fails_loudly(layout: Layout) -> None:
    """The check has teeth: a data_dir in the read-only tree stops the server with its error."""
    stage = layout.stage
    env, _ = environment(stage, layout)
    env["OCS_DIAMETER__DATA_DIR"] = "state/diameter"  # /opt/ocs/state: read-only
    log = layout.root.parent / "serve.log"
    server = start(command(stage, layout, stage.cmd), env, layout.root, log)
    try:
        code = server.wait(timeout=60)
    finally:
        stop(server)
    assert code != 0
    assert "Permission denied" in log.read_text() or "Read-only" in log.read_text()
