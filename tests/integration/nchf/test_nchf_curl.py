"""An HTTP/2 stack nobody here wrote: curl (libcurl + nghttp2) drives create / update /
release with --http2-prior-knowledge against `ocs serve`, as the README shows.

No independent Nchf consumer (an SMF simulator) runs offline here: none is packaged on
PyPI or in Debian (see protocols/nchf/README.md); curl checks the HTTP/2 layer and the
JSON the README promises. Missing curl fails the test on CI (CI=true) instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.core_fixtures import NewAccount
from tests.integration.nchf.conftest import BASE, NchfServer, request_body, unit

pytestmark = pytest.mark.interop


def curl() -> str:
    path = shutil.which("curl")
    features = subprocess.run([path, "-V"], capture_output=True, text=True).stdout if path else ""
    if path is None or "HTTP2" not in features:
        message = "curl with HTTP/2 (nghttp2) not installed (Debian: curl)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def post(url: str, body: dict[str, object]) -> tuple[str, int, dict[str, str], str]:
    """(HTTP version, status, headers, body) of one curl POST with prior knowledge."""
    out = subprocess.run(
        [curl(), "-s", "-i", "--http2-prior-knowledge", "-H", "content-type: application/json",
         "-d", json.dumps(body), "-w", "\n%{http_version}", url],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    head, _, rest = out.partition("\n\n")  # text mode: CRLF read as LF
    payload, _, version = rest.rpartition("\n")
    status_line, *lines = head.split("\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return version, int(status_line.split()[1]), headers, payload


async def test_curl_create_update_release(nchf_server: NchfServer, new_account: NewAccount) -> None:
    """curl over h2c: 201 with Location and a grant, 200 on update, 204 on release."""
    acct = await new_account()
    version, status, headers, payload = post(
        nchf_server.url + BASE, request_body(0, [unit(10, {})], "msisdn-" + acct.identity.value)
    )
    assert (version, status) == ("2", 201)
    grant = json.loads(payload)["multipleUnitInformation"][0]
    assert grant["resultCode"] == "SUCCESS" and grant["grantedUnit"]["totalVolume"] == 10_000
    resource = headers["location"]
    version, status, _, payload = post(
        resource + "/update", request_body(1, [unit(10, {}, totalVolume=4_000)])
    )
    assert (version, status) == ("2", 200) and json.loads(payload)["invocationSequenceNumber"] == 1
    version, status, _, payload = post(resource + "/release", request_body(2, [unit(10)]))
    assert (version, status, payload) == ("2", 204, "")
