"""Duplicate cache, drop-log rate limiting, client table, session mapping, config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from protocols.radius import metrics as m
from protocols.radius import sessions as ss
from protocols.radius.clients import ClientTable
from protocols.radius.drops import DropLog
from protocols.radius.dupcache import DuplicateCache, Lookup
from protocols.radius.settings import RadiusConfig

KEY = ("127.0.0.1", 4000, 7, b"a" * 16)


def test_duplicate_cache_replays_the_answer() -> None:
    """standards §3.4: a retransmission gets the cached answer."""
    cache = DuplicateCache(ttl=30)
    assert cache.begin(KEY, 0) is Lookup.NEW
    assert cache.begin(KEY, 1) is Lookup.PENDING
    cache.complete(KEY, b"answer", 2)
    assert cache.begin(KEY, 3) == b"answer"
    assert cache.begin(("127.0.0.1", 4001, 7, b"a" * 16), 3) is Lookup.NEW  # other port


def test_duplicate_cache_forgets_unanswered_and_expired() -> None:
    cache = DuplicateCache(ttl=30)
    cache.begin(KEY, 0)
    cache.complete(KEY, None, 1)  # storage down: the retry must be processed
    assert cache.begin(KEY, 2) is Lookup.NEW
    cache.complete(KEY, b"x", 2)
    assert cache.begin(KEY, 40) is Lookup.NEW


def test_duplicate_cache_is_bounded() -> None:
    cache = DuplicateCache(ttl=30, max_entries=16)
    for i in range(100):
        cache.begin(("h", i, 0, b""), 0)
    assert len(cache) == 16


def test_drop_log_once_per_source_and_interval() -> None:
    """One log line per source per interval, counting the drops it did not log."""
    log = DropLog(interval=60)
    assert log.should_log("a", 0) == 0
    assert log.should_log("a", 30) is None
    assert log.should_log("a", 31) is None
    assert log.should_log("b", 30) == 0
    assert log.should_log("a", 61) == 2


def test_drop_log_is_bounded() -> None:
    log = DropLog(interval=60, max_sources=8)
    for i in range(100):
        log.should_log(f"10.0.0.{i}", 0)
    assert log.should_log("10.0.0.0", 1) == 0  # evicted, so logged again


def _cfg(**extra: object) -> RadiusConfig:
    clients = [
        {"name": "net", "address": "10.0.0.0/8", "secret": "s1"},
        {"name": "host", "address": "10.1.2.3", "secret": "s2", "flavour": "mikrotik"},
        {"name": "v6", "address": "2001:db8::/32", "secret": "s3"},
    ]
    return RadiusConfig.model_validate({"clients": clients, **extra})


def test_client_lookup_longest_prefix_and_mapped_ipv4() -> None:
    """standards §3.1: the secret is chosen by source address; unknown -> None."""
    table = ClientTable(_cfg().clients)
    assert table.lookup("10.1.2.3").name == "host"
    assert table.lookup("10.9.9.9").name == "net"
    assert table.lookup("::ffff:10.1.2.3").name == "host"
    assert table.lookup("2001:db8::1").name == "v6"
    assert table.lookup("192.0.2.1") is None
    assert table.lookup("not-an-ip") is None


def test_client_lookup_answers_the_same_from_its_bounded_cache() -> None:
    """Cached answers (known and unknown sources) equal fresh ones, past the cache bound too."""
    table = ClientTable(_cfg().clients, cache_max=4)
    hosts = ["10.1.2.3", "10.9.9.9", "192.0.2.1", "2001:db8::1", "::ffff:10.1.2.3", "x"] * 3
    fresh = ClientTable(_cfg().clients, cache_max=10_000)
    for host in hosts:
        got, want = table.lookup(host), fresh.lookup(host)
        assert (got and got.name) == (want and want.name)
    assert table.lookup("10.1.2.3").name == "host"
    assert table.lookup("192.0.2.1") is None


def test_config_rejects_unknown_keys_and_short_interim() -> None:
    with pytest.raises(ValidationError):
        _cfg(bogus=1)
    with pytest.raises(ValidationError):
        _cfg(acct_interim_interval=59)  # RFC 2869 §5.16: >= 60 s
    with pytest.raises(ValidationError):
        RadiusConfig.model_validate(
            {"clients": [{"name": "a", "address": "127.0.0.1", "secret": ""}]}
        )


def test_session_ids_and_class_round_trip() -> None:
    """The Class we send names the session; another NAS's Class is ignored."""
    sid = ss.accounting_session_id("10.0.0.1", "abc")
    assert sid == "radius:10.0.0.1:abc"
    cls = ss.class_for(sid)
    assert ss.session_from_class("10.0.0.1", (b"other", cls)) == sid
    assert ss.session_from_class("10.0.0.2", (cls,)) is None
    assert ss.generated_session_id("n").startswith("radius:n:ocs-")
    assert ss.nas_key(None, None, "1.2.3.4") == "1.2.3.4"
    assert ss.nas_key(None, "nas-a", "1.2.3.4") == "nas-a"


def test_metric_children_cache_counts_the_same_past_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """metrics.inc adds to the labelled child, also after its bounded cache was cleared."""
    monkeypatch.setattr(m, "_CHILDREN_MAX", 3)
    before = {s: m.REQUESTS.labels("cache-test", s)._value.get() for s in "abcde"}
    for _ in range(2):
        for status in "abcde":
            m.inc(m.REQUESTS, "cache-test", status)
    assert len(m._children) <= 3
    for status in "abcde":
        assert m.REQUESTS.labels("cache-test", status)._value.get() == before[status] + 2
