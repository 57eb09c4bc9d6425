"""Sans-IO framing of a Diameter byte stream on the 24-bit message length (RFC 6733 §3).

Bytes go in, whole messages come out; no socket is involved. The framer waits
for a full 20-octet header before judging the length, so that a framing error
still knows the Hop-by-Hop/End-to-End ids and can be answered with 5015
(standards §1.8). After a :class:`FramingError` the stream has lost its
framing: the caller answers if it can and closes the connection.

``feed`` never raises: it returns the messages completed before any error and
sets :attr:`Framer.error`, which the caller checks after handling them.
"""

from __future__ import annotations

from protocols.diameter.constants import FLAG_REQUEST, HEADER_LENGTH

DEFAULT_MAX_MESSAGE = 1 << 20  # 1 MiB: larger CCRs are abuse, not traffic


class FramingError(Exception):
    """The stream cannot be framed any more (length < 20, not a multiple of 4, too big).

    ``header`` is the offending 20-octet header, kept so that a request can be
    answered with 5015 INVALID_MESSAGE_LENGTH before the connection closes.
    """

    def __init__(self, reason: str, header: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.header = header

    @property
    def answerable(self) -> bool:
        """True when the bad header is a request (never answer an answer)."""
        return len(self.header) == HEADER_LENGTH and bool(self.header[4] & FLAG_REQUEST)


class Framer:
    """Accumulates stream bytes and yields complete messages."""

    __slots__ = ("_buf", "error", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self.error: FramingError | None = None
        self.max_length = max_length

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a whole message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received octets; return every message now complete, in order.

        Once a length field is invalid, :attr:`error` is set and every later
        call returns nothing (the stream is unusable from then on).
        """
        if self.error is not None:
            return []
        buf = self._buf
        buf += data
        out: list[bytes] = []
        start = 0
        end = len(buf)
        while end - start >= HEADER_LENGTH:
            length = int.from_bytes(buf[start + 1 : start + 4], "big")
            reason = self._check_length(length)
            if reason is not None:
                self.error = FramingError(reason, bytes(buf[start : start + HEADER_LENGTH]))
                del buf[:]
                return out
            if end - start < length:
                break
            out.append(bytes(buf[start : start + length]))
            start += length
        if start:
            del buf[:start]
        return out

    def _check_length(self, length: int) -> str | None:
        if length < HEADER_LENGTH:
            return f"message length {length} < {HEADER_LENGTH}"
        if length % 4:
            return f"message length {length} is not a multiple of 4"
        if length > self.max_length:
            return f"message length {length} > limit {self.max_length}"
        return None
