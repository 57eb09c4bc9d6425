"""Interop suites reuse the integration fixtures (our server on 127.0.0.1 port 0, the real core)."""

from tests.integration.diameter.conftest import gy_server, new_client, start_server

__all__ = ["gy_server", "new_client", "start_server"]
