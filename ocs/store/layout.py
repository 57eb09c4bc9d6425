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
    request, supervision deadline, answers so far, request key x 4 (the
    newest four, by slot; '' for none), service count, then per service: key,
    money-rated units so far, charged, shortfall, then reserved (bucket handle
    -> units), used (unit code -> units), last cumulative counter (unit code
    -> counter) and taken from unit buckets (bucket id -> units), each as a
    count and its pairs]``; ``a1``..``a4``: the answers of the keys in those
    slots; ``n:<key>``: a service's name and ids (msgpack map, written once).

A CCR-U reads five account fields and four session fields and writes back
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
    request_keys: tuple[str, str, str, str]  # by answer slot, '' for none
    services: tuple[ServiceState, ...]


def hot_state(raw: Any) -> HotState:
    """A session's ``h``."""
    t = unpack(raw)
    i = 8
    services = []
    for _ in range(int(t[7])):
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
    keys = (str(t[3]), str(t[4]), str(t[5]), str(t[6]))
    return HotState(int(t[0]), int(t[1]), int(t[2]), keys, tuple(services))


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
