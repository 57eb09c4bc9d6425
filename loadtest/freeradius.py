"""FreeRADIUS 3.2 with rlm_redis as the benchmark's RADIUS reference point.

A minimal raddb in a temporary directory: one client (127.0.0.1), one
accounting listener, and an accounting section doing one ``HINCRBY`` per
request through rlm_redis (the octets of the record added to a hash per
User-Name). Debian packages ``freeradius`` and ``freeradius-redis`` are
installed with apt-get when missing and this process is root; otherwise
:func:`unavailable` says why the column is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

BINARY_NAMES = ("freeradius", "radiusd")
PACKAGES = ("freeradius", "freeradius-redis")
MODULE = Path("/usr/lib/freeradius/rlm_redis.so")

RADIUSD_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {dir}
raddbdir = {dir}
radacctdir = {dir}
name = freeradius
confdir = {dir}
modconfdir = {dir}
run_dir = {dir}
db_dir = {dir}
libdir = /usr/lib/freeradius
pidfile = {dir}/radiusd.pid
max_request_time = 30
cleanup_delay = 2
max_requests = 262144
hostname_lookups = no
log {{
  destination = stderr
  auth = no
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}}
thread pool {{
  start_servers = 4
  max_servers = 8
  min_spare_servers = 2
  max_spare_servers = 8
  max_requests_per_server = 0
  max_queue_size = 65536
}}
client loadtest {{
  ipaddr = 127.0.0.1
  secret = {secret}
}}
modules {{
  always ok {{
    rcode = ok
  }}
  redis {{
    server = 127.0.0.1
    port = {redis_port}
    pool {{
      start = 4
      min = 4
      max = 8
      spare = 4
      uses = 0
      lifetime = 0
      idle_timeout = 0
    }}
  }}
}}
server default {{
  listen {{
    type = acct
    ipaddr = 127.0.0.1
    port = {port}
  }}
  authorize {{
    ok
  }}
  accounting {{
    update control {{
      Tmp-Integer-0 := "%{{redis:HINCRBY lt:%{{User-Name}} octets %{{%{{Acct-Input-Octets}}:-0}}}}"
    }}
    ok
  }}
}}
"""


def binary() -> str | None:
    for name in BINARY_NAMES:
        found = shutil.which(name) or (
            f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
        )
        if found:
            return found
    return None


def ensure_installed() -> str | None:
    """Install the packages if we can; None when ready, else why not."""
    if binary() and MODULE.exists():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "FreeRADIUS not installed and cannot install it (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0 or not binary() or not MODULE.exists():
        return f"apt-get install {' '.join(PACKAGES)} failed: {proc.stderr.decode()[-300:]}"
    return None


class FreeRadius:
    def __init__(self, directory: Path, port: int, secret: str, redis_port: int) -> None:
        self.directory = directory
        self.port = port
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "radiusd.conf").write_text(
            RADIUSD_CONF.format(dir=directory, secret=secret, redis_port=redis_port, port=port)
        )
        (directory / "dictionary").write_text("$INCLUDE /usr/share/freeradius/dictionary\n")
        self.log = directory / "radiusd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: float = 10.0) -> None:
        exe = binary()
        assert exe is not None
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [exe, "-f", "-d", str(self.directory), "-n", "radiusd", "-l", "stdout"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"freeradius exited: {self.log.read_text()[-1500:]}")
            if "Ready to process requests" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"freeradius did not start: {self.log.read_text()[-1500:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
