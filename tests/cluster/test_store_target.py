"""Where the store is: URLs and the ``redis`` section become one StoreTarget (no server)."""

from __future__ import annotations

import pytest

from ocs.config import ConfigError, load_config
from ocs.store.client import StoreConfigError, parse_url, target_of, url_for_errors
from ocs.store.local_cluster import partition_table, ranges, slot_plan


def test_one_server_urls_stay_one_server() -> None:
    """redis://, rediss:// and unix:// name one server, passed to redis-py as they are."""
    for url in ("redis://h:6379/0", "rediss://h:6380/0", "unix:///run/r.sock?db=0"):
        target = parse_url(url)
        assert (target.mode, target.url) == ("single", url)


def test_cluster_url_names_seeds_credentials_and_tls() -> None:
    """redis+cluster:// lists seed nodes (IPv6 in brackets); user:password@ applies to each."""
    target = parse_url("rediss+cluster://ocs:p%40ss@10.0.0.1:7000,[::1]:7001")
    assert target.mode == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("::1", 7001))
    assert (target.username, target.password) == ("ocs", "p@ss")
    assert target.tls is not None
    assert "p@ss" not in target.describe()


def test_sentinel_url_names_sentinels_master_and_their_auth() -> None:
    """redis+sentinel://hosts/master; the sentinels' own password travels as a query."""
    target = parse_url("redis+sentinel://:pw@s1:26379,s2:26379/ocs?sentinel_password=spw")
    assert (target.mode, target.master) == ("sentinel", "ocs")
    assert target.nodes == (("s1", 26379), ("s2", 26379))
    assert (target.username, target.password) == (None, "pw")
    assert target.sentinel_auth == (None, "spw")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://", "no host:port"),
        ("redis+cluster://h", "expected host:port"),
        ("redis+cluster://h:99999", "expected host:port"),
        ("redis+sentinel://h:1", "expected /<master name>"),
        ("redis+clusters://h:1", "unknown scheme"),
    ],
)
def test_bad_store_urls_say_what_is_wrong(url: str, says: str) -> None:
    """Each malformed URL is refused with a message naming the problem."""
    with pytest.raises(StoreConfigError, match=says):
        parse_url(url)


def test_passwords_never_appear_in_error_text() -> None:
    """A URL quoted in an error hides its password."""
    assert url_for_errors("redis+cluster://u:secret@h:1") == "redis+cluster://u:***@h:1"


def test_redis_section_forms_become_targets() -> None:
    """redis.cluster, redis.sentinel, username/password, tls and durability from the section."""
    env = {
        "OCS_REDIS__CLUSTER": '["10.0.0.5:6379", "10.0.0.6:6379"]',
        "OCS_REDIS__USERNAME": "ocs",
        "OCS_REDIS__PASSWORD": "pw",
        "OCS_REDIS__TLS": "{enabled: true, check_hostname: false}",
        "OCS_REDIS__DURABILITY": "replica",
        "OCS_REDIS__REPLICA_TIMEOUT": "0.25",
    }
    target = target_of(load_config(None, env).redis)
    assert target.mode == "cluster"
    assert target.nodes == (("10.0.0.5", 6379), ("10.0.0.6", 6379))
    assert (target.username, target.password) == ("ocs", "pw")
    assert target.tls is not None and target.tls.check_hostname is False
    assert (target.wait_replica, target.replica_timeout) == (True, 0.25)
    sentinel = target_of(
        load_config(None, {"OCS_REDIS__SENTINEL": "{master: m, nodes: ['s:26379']}"}).redis
    )
    assert (sentinel.mode, sentinel.master, sentinel.nodes) == ("sentinel", "m", (("s", 26379),))


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"OCS_REDIS__URL": "redis://h", "OCS_REDIS__CLUSTER": '["h:1"]'},
            "set one of url, cluster, sentinel; got url and cluster",
        ),
        ({"OCS_REDIS__DURABILITY": "replica"}, "the embedded server has none"),
        ({"OCS_REDIS__CLUSTER": '["h"]'}, "redis.cluster: expected host:port, got 'h'"),
        ({"OCS_REDIS__CLUSTER": "[]"}, "expected at least one seed node"),
        ({"OCS_REDIS__SENTINEL": "{master: m, nodes: []}"}, "redis.sentinel.nodes"),
    ],
)
def test_bad_redis_sections_are_refused_at_load(env: dict[str, str], says: str) -> None:
    """Conflicting or malformed store settings fail at load, naming the key."""
    with pytest.raises(ConfigError, match=says):
        load_config(None, env)


def test_every_partition_count_spreads_evenly_over_the_primaries() -> None:
    """The local cluster's slot plan: for N = 1..1024, primaries differ by at most one partition."""
    for primaries in (1, 2, 3, 4):
        plan = slot_plan(primaries)
        assert sorted(s for slots in plan for s in slots) == list(range(16384))
        for n in (2**k for k in range(11)):
            sizes = [len(v) for v in partition_table(n, primaries).values()]
            assert max(sizes) - min(sizes) <= 1, (primaries, n, sizes)


def test_ranges_compress_sorted_slots() -> None:
    assert ranges([5, 1, 2, 3, 7]) == [(1, 3), (5, 5), (7, 7)]


def test_redirections_left_unfollowed_mean_storage_unavailable() -> None:
    """MOVED / ASK / TRYAGAIN / CLUSTERDOWN / READONLY arriving as replies are "not now"
    (a retry may succeed); a script's own error is not."""
    from redis import exceptions as rexc

    from ocs.store.client import is_unavailable

    # redis-py strips the code: str(MovedError) is "6953 127.0.0.1:60141"
    for exc in (
        rexc.MovedError("6953 127.0.0.1:60141"),
        rexc.AskError("6953 127.0.0.1:60141"),
        rexc.TryAgainError("Multiple keys request during rehashing of slot"),
        rexc.ClusterDownError("Hash slot not served"),
        rexc.ReadOnlyError("You can't write against a read only replica."),
        rexc.ConnectionError("lost"),
    ):
        assert is_unavailable(exc), exc
    assert not is_unavailable(rexc.ResponseError("WRONGTYPE Operation against a key"))
