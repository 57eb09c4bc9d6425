"""The protocol-neutral charging API: the one place that decides money.

Every front end (Diameter Gy, RADIUS, the CLI) calls these coroutines; each
maps to exactly one atomic Redis script, sent in one pipeline with the index
updates around it, so one round trip on the normal path (DESIGN.md "Data
flow" 2). Session life cycle as in RFC 4006 §7 (server state machine):
``initiate`` (CCR-I / Start) -> ``update``* (CCR-U / Interim) -> ``terminate``
(CCR-T / Stop); or a one-shot ``event`` (RFC 4006 §5.4).

Idempotency: every request carries a ``request_key`` (Gy: the CC-Request-Number
as text; RADIUS: a digest of status and counters). The script stores the first
outcome under that key and a repeat gets the same answer with
``replayed=True`` and no second charge.
"""

from __future__ import annotations

import functools
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import msgpack
import structlog
from redis import exceptions as rexc
from redis.asyncio import Redis

from ocs.charging import closing
from ocs.charging.events import EventCall, event_answer, event_charge, run_event_script
from ocs.charging.rating import cost, tariff_params
from ocs.charging.requests import RatedRequest, outcomes, rate_request
from ocs.charging.resolver import Resolver, Target
from ocs.metrics import CHARGING_OUTCOMES
from ocs.notify import subscribe
from ocs.policy.loader import PolicySet
from ocs.store.batch import Batcher, Command
from ocs.store.client import partitions as read_partitions
from ocs.store.client import storage_errors
from ocs.store.keys import AccountKeys, owner_index, session_index, supervision_shard
from ocs.store.scripts import Scripts, evalsha, library
from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    ChargingAnswer,
    EventAction,
    EventAnswer,
    Identity,
    Notification,
    ServiceKey,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
    TerminationCause,
    Usage,
)

log = structlog.get_logger("ocs.charging")

SESSION_INDEX_TTL = 30 * 86400  # refreshed by one request in 64 of a live session
_KEYS_KEPT = 100_000  # accounts whose key names are kept made
_pack = msgpack.Packer(use_bin_type=True).pack  # one packer: the loop is single-threaded

_ERRORS: dict[str, type[errors.ChargingError]] = {
    "user_unknown": errors.UserUnknown,
    "blocked": errors.AccountBlocked,
    "unknown_session": errors.UnknownSession,
}


@functools.cache
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_name(exc: BaseException) -> str:
    """The metric label of a charging error: ``UserUnknown`` -> ``user_unknown``."""
    return _snake(type(exc).__name__)


def _as_list(subscriber: Identity | Sequence[Identity] | None) -> list[Identity]:
    if subscriber is None:
        return []
    if isinstance(subscriber, Identity):
        return [subscriber]
    return list(subscriber)


def _decode(raw: bytes) -> dict[str, Any]:
    value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    return value if isinstance(value, dict) else {}


class ChargingService:
    """Facade over rating (Python) and the balance scripts (Redis Lua).

    One instance per process, shared by every front end of that process;
    :meth:`connect` builds it. ``policies`` can be swapped at any time
    (hot reload): each request rates with the set in force when it starts.
    """

    def __init__(self, client: Redis, policies: PolicySet, partitions: int) -> None:
        self.redis = client
        self.policies = policies
        self.partitions = partitions
        self.scripts = Scripts.register(client)
        self.batch = Batcher(client)
        self.resolver = Resolver(client, partitions, batch=self.batch)
        self.library: str | None = None  # set by load_scripts where functions exist
        self._keys: dict[str, AccountKeys] = {}
        # Bound once: a module-level structlog proxy re-binds on every call
        # (~2 us per event even when its level is filtered out).
        self._log = log.bind()
        # The time requests are rated at when they carry none: a seam so
        # tests can put a session on either side of a tariff switch.
        self.clock: Callable[[], float] = time.time

    @classmethod
    async def connect(cls, client: Redis, policies: PolicySet) -> ChargingService:
        service = cls(client, policies, await read_partitions(client))
        await service.load_scripts()
        return service

    def close(self) -> None:
        """Close the hot-path connection (the client's pool is its owner's to close)."""
        self.batch.close()

    def keys(self, account_id: str) -> AccountKeys:
        found = self._keys.get(account_id)
        if found is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()  # a bound, not an LRU: rebuilding is cheap
            found = self._keys[account_id] = AccountKeys(account_id, self.partitions)
        return found

    # -- sessions -----------------------------------------------------------

    async def initiate(
        self,
        session: SessionRef,
        subscriber: Identity | Sequence[Identity],
        services: Sequence[ServiceRequest],
        request_key: str = "0",
        now: int | None = None,
    ) -> ChargingAnswer:
        """Open a session and reserve quota per service (CCR-I, RADIUS Start).

        Raises UserUnknown, AccountBlocked, StorageUnavailable. A failure leaves
        nothing reserved (standards §2.6 "CCR-I fails: stay Idle").
        """
        ids = _as_list(subscriber)
        if not ids:
            raise errors.InvalidRequest("initiate needs a subscriber identity")
        return await self._session_call(
            "initiate",
            session,
            request_key,
            services,
            ids,
            now,
            TerminationCause.NORMAL,
            create=True,
        )

    async def update(
        self,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        subscriber: Identity | Sequence[Identity] | None = None,
        now: int | None = None,
    ) -> ChargingAnswer:
        """Debit the reported usage, release the old reservation, reserve again.

        With ``subscriber`` given and the session unknown, the session is opened
        implicitly (RADIUS Interim without Start); without it, UnknownSession.
        """
        return await self._session_call(
            "update",
            session,
            request_key,
            services,
            _as_list(subscriber),
            now,
            TerminationCause.NORMAL,
            create=subscriber is not None,
        )

    async def terminate(
        self,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        cause: TerminationCause = TerminationCause.NORMAL,
        subscriber: Identity | Sequence[Identity] | None = None,
        now: int | None = None,
    ) -> ChargingAnswer:
        """Debit the final usage, release what is left, write the record.

        With ``subscriber`` given and the session unknown, the usage is still
        charged and recorded (RADIUS Stop without Start); otherwise UnknownSession.
        """
        return await self._session_call(
            "terminate",
            session,
            request_key,
            services,
            _as_list(subscriber),
            now,
            cause,
            create=subscriber is not None,
        )

    async def _session_call(
        self,
        op: str,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        ids: list[Identity],
        now: int | None,
        cause: TerminationCause,
        create: bool,
    ) -> ChargingAnswer:
        try:
            answer = await self._session_call_once(
                op, session, request_key, services, ids, now, cause, create
            )
        except errors.ChargingError as exc:
            CHARGING_OUTCOMES.inc(op, error_name(exc))
            raise
        for outcome in answer.services:
            CHARGING_OUTCOMES.inc(op, outcome.status.value)
        return answer

    async def _session_call_once(
        self,
        op: str,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        ids: list[Identity],
        now: int | None,
        cause: TerminationCause,
        create: bool,
    ) -> ChargingAnswer:
        ts = int(self.clock()) if now is None else now
        for attempt in (0, 1):
            target = await self._target(session.session_id, ids, prefer_identity=op == "initiate")
            policies = self.policies
            if target.plan not in policies.plans:
                raise _plan_unknown(target, policies)
            rated = rate_request(policies, target.plan, services, ts)
            reply = await self._run_session_script(
                op, session, request_key, rated, target, ids, ts, cause, create, policies
            )
            err = reply.get("e")
            if err == "stale" and attempt == 0:
                self.resolver.forget(ids, session.session_id)
                continue
            if err is not None:
                raise _ERRORS.get(str(err), errors.UnknownSession)(f"{session.session_id}: {err}")
            self.resolver.remember_session(session.session_id, target)
            answer = ChargingAnswer(
                session_id=session.session_id,
                request_number=_number(request_key),
                account_id=target.account_id,
                services=outcomes(rated, reply),
                replayed=bool(reply.get("replay")),
            )
            self._log.debug(
                "charging_" + op,
                session=session.session_id,
                account=target.account_id,
                replayed=answer.replayed,
            )
            return answer
        raise errors.UnknownSession(session.session_id)  # stale twice: the data keeps moving

    async def _target(self, session_id: str, ids: list[Identity], prefer_identity: bool) -> Target:
        if prefer_identity and ids:
            return await self.resolver.by_identity(ids)
        hit = self.resolver.cached_session(session_id)  # the common case, no await chain
        if hit is not None:
            return hit
        try:
            return await self.resolver.by_session(session_id)
        except errors.UnknownSession:
            if not ids:
                raise
            return await self.resolver.by_identity(ids)

    async def _run_session_script(
        self,
        op: str,
        session: SessionRef,
        request_key: str,
        rated: RatedRequest,
        target: Target,
        ids: list[Identity],
        now: int,
        cause: TerminationCause,
        create: bool,
        policies: PolicySet,
    ) -> dict[str, Any]:
        keys = self.keys(target.account_id)
        member = f"{target.account_id}\0{session.session_id}"
        supervision = rated.supervision or 3600
        request = {
            "sid": session.session_id,
            "rk": request_key,
            "now": now,
            "acct": target.account_id,
            "ik": target.identity_key,
            "plan": target.plan,
            # Identities are kept when a session opens; a plain update sends none.
            "ids": [i.key() for i in ids] if op != "update" or create else [],
            "owner": session.owner,
            "attrs": session.attributes,  # msgpack packs the tuples as arrays
            "pv": policies.version,
            "sup": supervision,
            "svcs": rated.lua,
            "cause": cause.value,
            "create": int(create),
            "tax": policies.tax_ppm(target.plan),
            "lowb": policies.notifications.low_balance,
        }
        session_keys = keys.script_keys(session.session_id)
        # May this call open the session? An update that may create one (RADIUS
        # Interim) of a session this process has served is taken as an update.
        opening = op == "initiate" or (
            op == "update" and create and self.resolver.cached_session(session.session_id) is None
        )
        deadline = now + supervision
        commands = self._index_hints(op, session, request_key, target, member, deadline, opening)
        script_index = len(commands)
        commands.append(self.call(op, session_keys, _pack(request)))
        if op == "terminate":
            commands.append(("ZREM", supervision_shard(target.account_id), member))
            if session.owner:
                commands.append(("SREM", owner_index(session.owner), member))
        replies = await self.submit(commands)
        raw = replies[script_index]
        if raw[:1] == b"R":  # a replay: the stored answer, as first sent
            return {**_decode(raw[1:]), "replay": 1}
        reply = _decode(raw)
        if reply.get("new") and op == "update" and not opening:
            # It was opened after all (its state had expired): the index writes now.
            await self.submit(
                self._index_hints(op, session, request_key, target, member, deadline, True)
            )
        return reply

    def _index_hints(
        self,
        op: str,
        session: SessionRef,
        request_key: str,
        target: Target,
        member: str,
        deadline: int,
        opening: bool,
    ) -> list[Command]:
        """Index writes that go first in the pipeline (harmless if the script refuses).

        A plain update sends none: its supervision entry is only ever early,
        and the sweeper, finding the session alive, re-arms it at the real
        deadline; the session index is refreshed every 64th request and its
        owner entry only when the owner is new to this process. So the
        common request is one command: its script call.
        """
        if op == "terminate":
            return []
        commands: list[Command] = []
        if opening or _refresh_due(request_key):
            sidx = session_index(session.session_id)
            commands.append(("SET", sidx, target.account_id, "EX", SESSION_INDEX_TTL))
        if opening:
            commands.append(("ZADD", supervision_shard(target.account_id), deadline, member))
        if session.owner and self.resolver.owner_is_new(session.session_id, session.owner):
            commands.append(("SADD", owner_index(session.owner), member))
        return commands

    def call(self, name: str, keys: Sequence[str], *args: bytes | str | int) -> Command:
        """The command running one hot-path script: FCALL of the loaded library,
        or EVALSHA where the server has no functions."""
        if self.library is not None:
            return ("FCALL", f"{self.library}_{name}", len(keys), *keys, *args)
        return evalsha(getattr(self.scripts, name), keys, *args)

    async def submit(self, commands: list[Command]) -> list[Any]:
        """Send through the per-pass batcher; reload scripts once when Redis
        lost them (NOSCRIPT, or a function library gone after FUNCTION FLUSH)."""
        for attempt in (0, 1):
            try:
                replies = await self.batch.submit(commands)
            except Exception:
                async with storage_errors():  # maps the failure (raised again here)
                    raise
            if attempt == 0 and any(_lost_script(r) for r in replies):
                await self.load_scripts()
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    async with storage_errors():
                        raise reply
            return replies
        raise errors.StorageUnavailable("scripts could not be loaded")

    async def load_scripts(self) -> None:
        """Load every balance script, and the hot-path function library where
        the server has functions (at start, and when Redis lost them)."""
        async with storage_errors():
            for script in self.scripts.all():
                await self.redis.script_load(script.script)
            name, source = library()
            try:
                await self.redis.function_load(source, replace=True)
                self.library = name
            except rexc.ResponseError as exc:  # Redis < 7: scripts only
                log.info("function_library_unavailable", error=str(exc))
                self.library = None

    # -- one-shot events -----------------------------------------------------

    async def event(
        self,
        event_id: str,
        subscriber: Identity | Sequence[Identity],
        service: ServiceKey,
        action: EventAction,
        units: Usage | None = None,
        owner: str = "",
        now: int | None = None,
    ) -> EventAnswer:
        """One-shot charge (see :meth:`_event`), counted in ocs_charging_outcomes_total."""
        try:
            answer = await self._event(event_id, subscriber, service, action, units, owner, now)
        except errors.ChargingError as exc:
            CHARGING_OUTCOMES.inc("event", error_name(exc))
            raise
        CHARGING_OUTCOMES.inc("event", answer.status.value)
        return answer

    async def _event(
        self,
        event_id: str,
        subscriber: Identity | Sequence[Identity],
        service: ServiceKey,
        action: EventAction,
        units: Usage | None = None,
        owner: str = "",
        now: int | None = None,
    ) -> EventAnswer:
        """One-shot charge: direct debit, refund, balance check, price enquiry.

        ``event_id`` makes it idempotent (Gy: Session-Id + CC-Request-Number).
        A service unknown to the policy, or units it is not rated in (see
        :func:`ocs.charging.events.event_charge`), answer RATING_FAILED,
        changing nothing.
        """
        ts = int(self.clock()) if now is None else now
        ids = _as_list(subscriber)
        for attempt in (0, 1):
            target = await self.resolver.by_identity(ids)
            policies = self.policies
            plan = policies.plans.get(target.plan)
            if plan is None:
                raise _plan_unknown(target, policies)
            name = policies.service_name(service)
            price = policies.price(target.plan, name, ts) if name else None
            if name is None or price is None:
                return EventAnswer(
                    event_id, target.account_id, action, ServiceStatus.RATING_FAILED, service
                )
            unit = policies.services[name].unit
            charge = event_charge(action, units, unit)
            if charge is None:  # units the service is not rated in: never guessed
                return EventAnswer(
                    event_id, target.account_id, action, ServiceStatus.RATING_FAILED, service
                )
            amount, used = charge
            params = tariff_params(price)
            if action is EventAction.PRICE_ENQUIRY:
                return EventAnswer(
                    event_id,
                    target.account_id,
                    action,
                    ServiceStatus.GRANTED,
                    service,
                    Usage.of(unit, amount),
                    cost(params, amount),
                    plan.currency,
                )
            call = EventCall(
                event_id,
                action,
                target,
                ids,
                service,
                name,
                unit,
                amount,
                used,
                params,
                ts,
                owner,
                policies,
            )
            reply = await run_event_script(self, call)
            if reply.get("e") == "stale" and attempt == 0:
                self.resolver.forget(ids)
                continue
            if "e" in reply:
                raise _ERRORS.get(str(reply["e"]), errors.UserUnknown)(f"{event_id}: {reply['e']}")
            return event_answer(call, reply)
        raise errors.UserUnknown(event_id)

    # -- closing sessions the gateway will not close ---------------------------

    async def abandon(
        self,
        account_id: str,
        session_id: str,
        cause: TerminationCause,
        now: int | None = None,
        force: bool = False,
        opened_before: int | None = None,
    ) -> dict[str, Any]:
        """Release and record one session past its supervision deadline (or
        ``force``); see :mod:`ocs.charging.closing`."""
        ts = int(self.clock()) if now is None else now
        return await closing.abandon(self, account_id, session_id, cause, ts, force, opened_before)

    async def terminate_owner_sessions(
        self, owner: str, cause: TerminationCause, opened_before: int | None = None
    ) -> int:
        """Close every open session of one owner (Diameter peer restart with a
        higher Origin-State-Id; RADIUS Accounting-On/Off). Returns how many."""
        return await closing.close_owner_sessions(self, owner, cause, opened_before)

    def notifications(self) -> AsyncIterator[Notification]:
        """Pushes for live sessions (top-up, block...), from any process."""
        # The start is fixed now, not at the first read: nothing written after
        # this call is missed, however late the consumer task gets going.
        return subscribe(self.redis, self.partitions, since_ms=int(time.time() * 1000))


def _plan_unknown(target: Target, policies: PolicySet) -> errors.PlanUnknown:
    return errors.PlanUnknown(
        f"account {target.account_id}: plan {target.plan!r} is not in policy set {policies.version}"
    )


def _lost_script(reply: object) -> bool:
    return isinstance(reply, rexc.NoScriptError) or (
        isinstance(reply, rexc.ResponseError) and "function not found" in str(reply).lower()
    )


def _refresh_due(request_key: str) -> bool:
    """One request in 64 refreshes the session index's time-to-live (Gy:
    CC-Request-Number; RADIUS: its digest key, hashed)."""
    if request_key.isdigit():
        return int(request_key) % 64 == 0
    return zlib.crc32(request_key.encode()) % 64 == 0


def _number(request_key: str) -> int:
    return int(request_key) if request_key.isdigit() else 0
