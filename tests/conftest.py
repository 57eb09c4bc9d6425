"""Suite-wide fixtures: a real Redis started for the test session.

``redis_url`` is a private server (the project's embedded launcher, random
loopback port, temporary directory), or ``OCS_TEST_REDIS_URL`` when set.
Charging-core fixtures come from tests/core_fixtures.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs.store.embedded import start_for_tests

pytest_plugins = ["tests.core_fixtures"]


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
        server.stop()
        server.kill()
