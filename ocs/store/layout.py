"""How accounts and sessions are stored (layout 2), read from Python.

The balance scripts (``ocs/store/lua/``) own the writes; this module reads
the same fields for the administration side (``ocs account show``, the load
tester's conservation check, ``ocs store migrate``) and checks that a store
holds this layout.

Account hash ``ocs:{pNN}:a:<account>``
    ``status``, ``plan``, ``currency``, ``created``, ``updated``,
    ``renewed:<allowance>``; ``m``: the buckets' fixed description, msgpack
    ``[[id, unit, expiry, priority, floor, [rg, sid, ...], handle], ...]``
    in consumption order (-1: any rating group / service id; the handle never
    changes while the bucket lives); ``b``: msgpack ``[amount, reserved,
    ...]``, one pair per bucket in ``m``'s order.
Session hash ``ocs:{pNN}:a:<account>:s:<session>``
    ``st`` (open / closed), ``start``, ``pv`` (policy version at opening),
    ``o`` (owner), ``at`` (attributes, msgpack), ``ids`` (identities,
    msgpack); ``h``: the hot state, msgpack ``[last
    request, supervision deadline, answers so far, service count, then per
    service: key, money-rated units so far, charged, shortfall, then reserved
    (bucket handle -> units), used (unit code -> units), last cumulative
    counter (unit code -> counter) and taken from unit buckets (bucket id ->
    units), each as a count and its pairs]``; ``a0``..``a15``: the answers
    kept for repeats (below); ``n:<key>``: a service's name and ids (msgpack
    map, written once).

Answers (idempotency, DESIGN.md "Idempotent by construction")
    Each answer is kept in field ``a<slot>`` as ``<request key>\n<answer>``,
    where the slot is :func:`answer_slot` of its request key, in a window of
    ``ANSWER_WINDOW`` (16) slots. A *numbered* key (Gy CC-Request-Number,
    RFC 4006 §8.2, one more per request of a session; Nchf invocation
    sequence number: decimal, below 10**12) N takes slot N mod 16, so the
    answers of the last 16 numbers are kept, whatever arrived in between; a
    slot only ever takes a higher number than it holds, so a number below
    the one in its slot is *too old*: it may have been answered and that
    answer is gone, and the script refuses it (``too_old``) without
    changing anything. A number never answered (its slot empty or holding a
    lower one) is a new request. Any other key (RADIUS: a digest of status
    and counters) takes the slot of a hash of its text: its repeat is
    replayed while no other key took that slot since; older than that it is
    a new request, and a RADIUS record older than the counters already
    counted charges nothing (lib.lua ``stale``). The window costs nothing on
    the hot path: the slot is read with the session's other fields and
    written with the answer, and ``h`` holds no request key.
    Why 16: a Gy or Nchf client sends a session's next request after the
    answer to the previous one, so a late duplicate (a T-flag re-send over
    another peer) is a few numbers behind, not dozens; every slot costs a
    long session about 70 bytes of Redis memory (MEMORY USAGE of a 2-MSCC
    session after 200 updates: 713 bytes with no window, 1,268 with 16
    slots, 5,328 with 64), and beyond the window nothing is charged twice,
    only refused.

A CCR-U reads five account fields and five session fields and writes back
``b``, ``h`` and one answer: no other state is read or rewritten, and
identities, attributes and the record history are not touched until the
session closes. Layout 1 (ocs before this layout: msgpack blobs for the
balance and the session, answers in a hash and a list of their own) is
converted by ``ocs store migrate`` (:mod:`ocs.store.migrate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import msgpack

from ocs.store.client import Store, storage_errors, text
from ocs.store.keys import ACCOUNTS_INDEX, PREFIX
from ocs.vocabulary.errors import StorageUnavailable

LAYOUT = 2
ANSWER_WINDOW = 16  # answers kept per session (lib.lua ANSWER_WINDOW)
NUMBERED_BELOW = 10**12  # a numbered key travels as an integer below this
LAYOUT_KEY = f"{PREFIX}:meta:layout"
MIGRATE_COMMAND = "ocs store migrate"


class StoreMigrationNeeded(StorageUnavailable):
    """The store holds state of an older ocs layout: nothing was changed;
    ``ocs store migrate`` converts it (with every server stopped)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"{detail}: the store holds state of an older ocs version; "
            f"stop every ocs server and run `{MIGRATE_COMMAND}`"
        )


UNIT_NAMES = ("money", "total_octets", "input_octets", "output_octets", "seconds", "events")


class Bucket(NamedTuple):
    id: str
    unit: str
    amount: int
    reserved: int
    expires: int  # unix s, 0: never
    priority: int
    floor: int
    services: tuple[tuple[int, int], ...]  # (rating group, service id), -1: any
    handle: int


def unpack(raw: Any) -> Any:
    return msgpack.unpackb(
        raw if isinstance(raw, bytes) else str(raw).encode(), raw=False, strict_map_key=False
    )


def account_fields(flat: Mapping[Any, Any]) -> dict[str, Any]:
    """An account hash with str keys (values as stored)."""
    return {text(k): v for k, v in flat.items()}


def buckets(fields: Mapping[str, Any]) -> list[Bucket]:
    """The buckets of an account hash (``account_fields``), in consumption order."""
    if "m" not in fields:
        return []
    amounts = unpack(fields["b"]) if "b" in fields else []
    out = []
    for i, d in enumerate(unpack(fields["m"])):
        svc = list(d[5] or [])
        out.append(
            Bucket(
                str(d[0]),
                str(d[1]),
                int(amounts[2 * i]),
                int(amounts[2 * i + 1]),
                int(d[2] or 0),
                int(d[3]),
                int(d[4] or 0),
                tuple((int(svc[j]), int(svc[j + 1])) for j in range(0, len(svc), 2)),
                int(d[6]),
            )
        )
    return out


def info_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """The account's own fields (status, plan, ...), without the buckets."""
    return {k: text(v) for k, v in fields.items() if k not in ("m", "b")}


class ServiceState(NamedTuple):
    key: str
    money_units: int  # money-rated units so far (blocks are priced on the total)
    charged: int
    shortfall: int
    reserved: dict[int, int]  # bucket handle -> units reserved
    used: dict[str, int]  # unit -> units
    cumulative: dict[str, int]  # unit -> last cumulative counter
    from_buckets: dict[str, int]  # bucket id -> units taken


class HotState(NamedTuple):
    last: int
    deadline: int
    answers: int
    services: tuple[ServiceState, ...]


_HOT_SERVICES = 3  # where the service count is in ``h`` (0-based)


def hot_state(raw: Any) -> HotState:
    """A session's ``h``."""
    t = unpack(raw)
    i = _HOT_SERVICES + 1
    services = []
    for _ in range(int(t[_HOT_SERVICES])):
        key, mu, ch, sf = str(t[i]), int(t[i + 1]), int(t[i + 2]), int(t[i + 3])
        i += 4
        maps: list[dict[Any, int]] = []
        for _ in range(4):
            n = int(t[i])
            maps.append({t[i + 1 + 2 * j]: int(t[i + 2 + 2 * j]) for j in range(n)})
            i += 1 + 2 * n
        reserved, used, cum, fb = maps
        services.append(
            ServiceState(
                key,
                mu,
                ch,
                sf,
                {int(h): v for h, v in reserved.items()},
                {UNIT_NAMES[int(c) - 1]: v for c, v in used.items()},
                {UNIT_NAMES[int(c) - 1]: v for c, v in cum.items()},
                {str(b): v for b, v in fb.items()},
            )
        )
    return HotState(int(t[0]), int(t[1]), int(t[2]), tuple(services))


def script_key(request_key: str) -> int | str:
    """The request key as the session scripts take it: an integer when it is
    numbered (a decimal without leading zeros, below ``NUMBERED_BELOW``)."""
    if (
        request_key.isascii()
        and request_key.isdigit()
        and len(request_key) <= 12
        and (request_key == "0" or request_key[0] != "0")
    ):
        return int(request_key)  # 12 digits at most: below NUMBERED_BELOW
    return request_key


def answer_slot(key: int | str) -> int:
    """The answer slot of a script key (lib.lua ``answer_field``)."""
    if isinstance(key, int):
        return key % ANSWER_WINDOW
    h = 0
    for b in key.encode():
        h = (h * 31 + b) % 65521
    return h % ANSWER_WINDOW


def kept_answer(key: int | str, answer: bytes) -> bytes:
    """The value of an answer slot (lib.lua ``keep_answer``)."""
    return str(key).encode() + b"\n" + answer


def session_view(fields: Mapping[Any, Any], handles: Mapping[int, str]) -> dict[str, Any]:
    """A session hash as ``ocs account show`` shows it (``handles``: the
    account's bucket handle -> id)."""
    f = {text(k): v for k, v in fields.items()}
    hot = hot_state(f["h"]) if "h" in f else None
    services: dict[str, Any] = {}
    for st in hot.services if hot else ():
        static = unpack(f[f"n:{st.key}"]) if f"n:{st.key}" in f else {}
        services[st.key] = {
            "name": static.get("nm"),
            "reserved": {handles.get(h, str(h)): v for h, v in st.reserved.items() if v},
            "used": st.used,
            "charged": st.charged,
        }
    return {
        "owner": text(f.get("o", b"")),
        "started": _int(f.get("start")),
        "last_seen": hot.last if hot else None,
        "deadline": hot.deadline if hot else None,
        "policy_version": text(f.get("pv", b"")),
        "services": services,
    }


def _int(value: object) -> int | None:
    return None if value is None else int(text(value))


async def check_layout(client: Store) -> None:
    """Refuse a store written by an older ocs (layout 1, or no mark at all
    while it holds accounts); mark an empty store as this layout."""
    async with storage_errors():
        mark = await client.get(LAYOUT_KEY)
        if mark is not None:
            if int(text(mark)) != LAYOUT:
                raise StoreMigrationNeeded(f"{LAYOUT_KEY} is {text(mark)}, this ocs needs {LAYOUT}")
            return
        if await client.scard(ACCOUNTS_INDEX):
            raise StoreMigrationNeeded(f"{LAYOUT_KEY} is not set but accounts exist")
        await client.set(LAYOUT_KEY, LAYOUT, nx=True)
