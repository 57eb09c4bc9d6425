"""Our Origin-State-Id: one value per node start, shared by its workers, growing across
starts (RFC 6733 §8.16); the peers' ones, bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols.diameter import origin_state
from protocols.diameter.origin_state import (
    MAX_HOST,
    MAX_PEERS,
    NS,
    PeerRestarts,
    next_origin_state_id,
)


def test_workers_of_one_node_start_get_one_value(tmp_path: Path) -> None:
    """Every worker (and a restarted one) of one node start reads back the same value."""
    f = tmp_path / "origin-state-id"
    start = 1_000 * NS
    first = next_origin_state_id(f, node_start=start)
    assert [next_origin_state_id(f, node_start=start) for _ in range(3)] == [first] * 3


def test_each_node_start_gets_a_higher_value(tmp_path: Path) -> None:
    """A new node start moves the value forward, even within the same second or with the
    clock stepped back; without a state file, the start's second is the value."""
    f = tmp_path / "origin-state-id"
    a = next_origin_state_id(f, node_start=1_000 * NS)
    b = next_origin_state_id(f, node_start=1_000 * NS + 1)  # same second, another start
    c = next_origin_state_id(f, node_start=500 * NS)  # clock stepped back
    assert a == 1_000 and a < b < c
    assert next_origin_state_id(None, node_start=1_234 * NS + 5) == 1_234


def test_a_state_file_of_the_older_format_is_read(tmp_path: Path) -> None:
    """A file holding only the value (before node starts were recorded) still counts."""
    f = tmp_path / "origin-state-id"
    f.write_text("5000\n")
    assert next_origin_state_id(f, node_start=1_000 * NS) == 5_001


def test_peers_kept_are_bounded_in_number_and_size() -> None:
    """Thousands of Origin-Hosts, one a whole message long: at most MAX_PEERS kept, each key
    short; the most recently seen still detect a restart, the forgotten ones infer nothing."""
    r = PeerRestarts()
    long_host = "x" * 100_000 + ".example"
    assert not r.observe(long_host, 5)
    for i in range(MAX_PEERS + 500):
        r.observe(f"gw{i}.example", 1)
    assert len(r) == MAX_PEERS
    assert max(len(k) for k in r._seen) <= MAX_HOST + 1
    assert r.observe(long_host, 6) is False  # forgotten (least recently seen): no inference
    assert r.observe(long_host, 7) is True  # known again: a higher value is a restart
    assert r.observe(f"gw{MAX_PEERS + 499}.example", 2) is True
    assert len(r) == MAX_PEERS


def test_the_shared_file_is_bounded_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers' file keeps the same bound, the most recently seen peers last."""
    monkeypatch.setattr(origin_state, "MAX_PEERS", 16)
    f = tmp_path / "peers.json"
    r = PeerRestarts(f)
    long_host = "y" * 100_000
    r.observe(long_host, 5)
    for i in range(40):
        r.observe(f"gw{i}.example", 1)
    r.observe(long_host, 6)
    stored = json.loads(f.read_text())
    assert len(stored) == 16 and list(stored)[-1].startswith("#")
    assert f.stat().st_size < 2_000
    assert PeerRestarts(f).observe(long_host, 7) is True  # another worker, or our next run
