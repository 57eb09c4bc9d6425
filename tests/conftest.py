"""Suite-wide fixtures: a real Redis started for the test session.

``redis_url`` is a private server (the project's embedded launcher, random
loopback port, temporary directory), or ``OCS_TEST_REDIS_URL`` when set. The
private server is shut down at session end, killed if that fails, and killed
by the kernel if the test process itself dies (``die_with_parent``).
``redis`` is an async client of the test's store (``store_url``: that server,
or a local cluster for the suites that run on both, tests/cluster/fixtures.py),
bytes in, bytes out, on the session loop.
``unique_id`` gives identifiers no other test uses: tests never depend on
each other's data or order.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from ocs.store.client import Store, connect
from ocs.store.embedded import start_for_tests

# ---- charging-core fixtures (lead): `charging`, `accounts`, `new_account`, ... ----
# They live in tests/core_fixtures.py, loaded here as a plugin so every suite sees them.
pytest_plugins = ["tests.core_fixtures", "tests.cluster.fixtures"]
# -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("OCS_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = start_for_tests(Path(tmp_path_factory.mktemp("redis")))
    try:
        yield server.url
    finally:
        try:
            with contextlib.suppress(Exception):
                server.stop()
        finally:
            server.kill()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis(store_url: str) -> AsyncIterator[Store]:
    """A client of the test's store (the one server, or the cluster: tests/cluster)."""
    client = connect(store_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def unique_id() -> Callable[[str], str]:
    """``unique_id("acct")`` -> ``"acct-<32 hex>"``, fresh on every call."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex}"

    return make
