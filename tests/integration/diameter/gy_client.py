"""A small Gy client for tests, built on python-diameter's message classes and plain asyncio.

It is the gateway side: CER, CCRs (python-diameter's CreditControlRequest),
DWR/DPR, raw bytes for malformed cases, and it answers the server's RAR/ASR
(RAA/ASA with a chosen Result-Code) while recording them.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
import time
from typing import Any

from diameter.message import Message
from diameter.message.avp import AvpGrouped
from diameter.message.avp.grouped import (
    MultipleServicesCreditControl,
    RequestedServiceUnit,
    SubscriptionId,
    UsedServiceUnit,
)
from diameter.message.commands import (
    AbortSessionAnswer,
    CapabilitiesExchangeRequest,
    CreditControlRequest,
    DeviceWatchdogRequest,
    DisconnectPeerRequest,
    ReAuthAnswer,
)
from diameter.message.commands.credit_control import CreditControlAnswer
from diameter.message.constants import E_SUBSCRIPTION_ID_TYPE_END_USER_E164

ORIGIN_HOST = "gw.test.example"
ORIGIN_REALM = "test.example"


def rsu(**units: int) -> RequestedServiceUnit:
    return RequestedServiceUnit(**units)


def usu(**units: Any) -> UsedServiceUnit:
    return UsedServiceUnit(**units)


def mscc(
    rating_group: int | None = None,
    requested: RequestedServiceUnit | None = None,
    used: list[UsedServiceUnit] | None = None,
    **kw: Any,
) -> MultipleServicesCreditControl:
    return MultipleServicesCreditControl(
        rating_group=rating_group,
        requested_service_unit=requested,
        used_service_unit=used or [],
        **kw,
    )


class GyClient:
    def __init__(self, host: str, port: int, origin_host: str = ORIGIN_HOST) -> None:
        self.host, self.port = host, port
        self.origin_host = origin_host
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._hbh = itertools.count(1000)
        # RFC 6733 §3: End-to-End ids unique across restarts (time bits + random bits).
        self._e2e = itertools.count(((int(time.time()) & 0xFFF) << 20) | random.getrandbits(16))
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self.server_requests: list[Message] = []
        self.server_request_event = asyncio.Event()
        self.push_result = 2001
        self.answer_watchdog = True  # False: play a half-open peer
        self.closed = asyncio.Event()
        self.unsolicited: list[bytes] = []

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        assert self.reader is not None
        try:
            while True:
                head = await self.reader.readexactly(20)
                length = int.from_bytes(head[1:4], "big")
                data = head + await self.reader.readexactly(length - 20)
                self._on_message(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))

    def _on_message(self, data: bytes) -> None:
        flags = data[4]
        hbh = struct.unpack(">I", data[12:16])[0]
        if flags & 0x80:
            msg = Message.from_bytes(data)
            self.server_requests.append(msg)
            self.server_request_event.set()
            self._answer_server(msg)
            return
        fut = self._waiting.pop(hbh, None)
        if fut is None:
            self.unsolicited.append(data)
        elif not fut.done():
            fut.set_result(data)

    def _answer_server(self, req: Message) -> None:
        code = req.header.command_code
        if code == 258:
            ans: Message = ReAuthAnswer()
        elif code == 274:
            ans = AbortSessionAnswer()
        elif code == 282 or (code == 280 and self.answer_watchdog):
            ans = req.to_answer()
        else:
            return
        ans.header.hop_by_hop_identifier = req.header.hop_by_hop_identifier
        ans.header.end_to_end_identifier = req.header.end_to_end_identifier
        ans.header.application_id = req.header.application_id
        if hasattr(req, "session_id") and req.session_id:
            ans.session_id = req.session_id
        ans.result_code = self.push_result if code in (258, 274) else 2001
        ans.origin_host = self.origin_host.encode()
        ans.origin_realm = ORIGIN_REALM.encode()
        self.write(ans.as_bytes())

    def write(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    def next_ids(self) -> tuple[int, int]:
        return next(self._hbh), next(self._e2e)

    async def send_raw(self, data: bytes, hbh: int | None = None, limit: float = 5.0) -> bytes:
        """Send bytes and wait for the answer with this Hop-by-Hop id (default: the one in data)."""
        hbh = struct.unpack(">I", data[12:16])[0] if hbh is None else hbh
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[hbh] = fut
        self.write(data)
        return await asyncio.wait_for(fut, limit)

    async def send(self, msg: Message, limit: float = 5.0) -> Message:
        hbh, e2e = self.next_ids()
        if not msg.header.hop_by_hop_identifier:
            msg.header.hop_by_hop_identifier = hbh
        if not msg.header.end_to_end_identifier:
            msg.header.end_to_end_identifier = e2e
        data = await self.send_raw(msg.as_bytes(), msg.header.hop_by_hop_identifier, limit)
        answer = Message.from_bytes(data)
        answer.raw = data  # for plain re-reads (Failed-AVP chains)
        return answer

    async def cer(
        self, apps: tuple[int, ...] = (4,), state_id: int = 1, vendors: tuple[int, ...] = (10415,)
    ) -> Message:
        cer = CapabilitiesExchangeRequest()
        cer.origin_host = self.origin_host.encode()
        cer.origin_realm = ORIGIN_REALM.encode()
        cer.host_ip_address = ["127.0.0.1"]
        cer.vendor_id = 0
        cer.product_name = "pytest-gy-client"
        cer.origin_state_id = state_id
        cer.auth_application_id = list(apps)
        cer.supported_vendor_id = list(vendors)
        return await self.send(cer)

    async def dwr(self) -> Message:
        dwr = DeviceWatchdogRequest()
        dwr.origin_host = self.origin_host.encode()
        dwr.origin_realm = ORIGIN_REALM.encode()
        return await self.send(dwr)

    async def dpr(self, cause: int = 0) -> Message:
        dpr = DisconnectPeerRequest()
        dpr.origin_host = self.origin_host.encode()
        dpr.origin_realm = ORIGIN_REALM.encode()
        dpr.disconnect_cause = cause
        return await self.send(dpr)

    def ccr(
        self,
        session_id: str,
        req_type: int,
        number: int,
        msisdn: str | None = None,
        msccs: list[MultipleServicesCreditControl] | None = None,
        **kw: Any,
    ) -> CreditControlRequest:
        ccr = CreditControlRequest()
        ccr.header.application_id = 4
        ccr.session_id = session_id
        ccr.origin_host = self.origin_host.encode()
        ccr.origin_realm = ORIGIN_REALM.encode()
        ccr.destination_realm = b"test.example"
        ccr.service_context_id = "32251@3gpp.org"
        ccr.cc_request_type = req_type
        ccr.cc_request_number = number
        if msisdn is not None:
            ccr.subscription_id = [SubscriptionId(E_SUBSCRIPTION_ID_TYPE_END_USER_E164, msisdn)]
        if msccs is not None:
            ccr.multiple_services_indicator = 1
            ccr.multiple_services_credit_control = msccs
        for key, value in kw.items():
            setattr(ccr, key, value)
        return ccr

    async def call(self, ccr: CreditControlRequest, limit: float = 5.0) -> CreditControlAnswer:
        ans = await self.send(ccr, limit)
        assert isinstance(ans, CreditControlAnswer), ans
        return ans

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:  # bounded: a peer that stopped reading must not hang the test's teardown
                await asyncio.wait_for(self.writer.wait_closed(), 2.0)
            except (ConnectionError, TimeoutError):
                self.writer.transport.abort()
        if self._reader_task is not None:
            self._reader_task.cancel()


def plain(data: bytes) -> Message:
    return Message.from_bytes(data, plain_msg=True)


def result_of(data: bytes) -> int:
    return int(next(a.value for a in plain(data).avps if a.code == 268))


def failed_codes(data: bytes) -> list[int]:
    """Codes along the first-child chain of the first Failed-AVP."""
    out: list[int] = []
    for avp in plain(data).avps:
        if avp.code == 279:
            node = avp.value[0]
            while True:
                out.append(node.code)
                if not isinstance(node, AvpGrouped) or not node.value:
                    return out
                node = node.value[0]
    return out
