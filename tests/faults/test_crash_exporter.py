"""kill -9 of the exporter in a loop, in the fault suite: the exporter's own crash loop
(tests/integration/export/test_export_crash.py, 20 kills in the default suite, 100 in
`make test-slow`) run here with 40 kills and another seed, so `make test-faults` covers
every crash class. It asserts every record exported exactly once (lost 0, doubled 0),
nothing left pending, and `ocs export verify` passing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.export.test_export_crash import crash_loop


@pytest.mark.faults
@pytest.mark.timeout(600)
def test_kill9_exporter_forty_times(redis_url: str, tmp_path: Path) -> None:
    """Forty kill -9 of a working exporter while records arrive: lost 0, doubled 0."""
    crash_loop(redis_url, tmp_path, kills=40, seed=40)
    print("kill -9 exporter x40: lost 0, doubled 0, pending 0, export verify ok")
