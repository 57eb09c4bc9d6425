"""The store suites run on a Valkey Cluster too: fixtures and the parametrisation.

``cluster_url`` is a local cluster (3 primaries + 3 replicas, :class:`LocalCluster`)
started once per test session in a temporary directory and stopped at its end
(killed by the kernel if the test process dies), or ``OCS_TEST_CLUSTER_URL``
when set. ``store_url`` is the store a test runs on: the suite's one server
(``redis_url``) or the cluster. The suites listed in :data:`CLUSTER_SUITES`
run twice, ``[single]`` and ``[cluster]`` (the same tests, not forks); the
others get ``single``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ocs.store.local_cluster import LocalCluster

# Suites whose tests run on both stores (node ids start with one of these).
CLUSTER_SUITES = (
    "tests/integration/core/",
    "tests/integration/cli/test_cli.py",
    "tests/integration/export/test_export_charging.py",
    "tests/integration/export/test_export_crash.py",
    "tests/integration/admin/test_webhooks.py",
    "tests/cluster/",
)
# Tests of the one-server pipe's internals (its own connection, redis-py's
# pipeline fallback): the cluster's routing has its own (tests/cluster/test_cluster_pipe.py).
SINGLE_ONLY = (
    "tests/integration/core/test_pipe.py",
    "tests/integration/core/test_batching.py::test_one_write_per_loop_pass",
    "tests/integration/core/test_batching.py::test_without_the_pipe",
)
STORES = ("single", "cluster")


def runs_on_cluster(nodeid: str) -> bool:
    return nodeid.startswith(CLUSTER_SUITES) and not nodeid.startswith(SINGLE_ONLY)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" in metafunc.fixturenames and runs_on_cluster(metafunc.definition.nodeid):
        metafunc.parametrize("store_kind", STORES, indirect=True, scope="session")


@pytest.fixture(scope="session")
def store_kind(request: pytest.FixtureRequest) -> str:
    """``single`` or ``cluster`` (parametrised for :data:`CLUSTER_SUITES`)."""
    return str(getattr(request, "param", "single"))


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("OCS_TEST_CLUSTER_URL")
    if url:
        yield url
        return
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), primaries=3, replicas=1)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def store_url(store_kind: str, request: pytest.FixtureRequest) -> str:
    """The store this test runs on: the suite's one server, or the cluster."""
    return str(request.getfixturevalue("cluster_url" if store_kind == "cluster" else "redis_url"))
