"""Our Origin-State-Id: one value per node start, shared by its workers, growing across
starts (RFC 6733 §8.16; issue 13 item 8)."""

from __future__ import annotations

from pathlib import Path

from protocols.diameter.origin_state import NS, next_origin_state_id


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
