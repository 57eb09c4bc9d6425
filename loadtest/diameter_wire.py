"""Just enough Diameter reading for a load generator (RFC 6733 §3, §4), sans-IO.

The generator must spend as little CPU per answer as it can, so it does not
decode answers with python-diameter: it splits the byte stream on the 24-bit
message length and reads, with ``struct``, the header fields and the few
top-level AVPs it reports on (Result-Code, Experimental-Result-Code and the
Result-Codes inside each Multiple-Services-Credit-Control). Anything it
cannot read is reported as result 0, never raised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = 20
FLAG_REQUEST = 0x80
FLAG_ERROR = 0x20
AVP_FLAG_VENDOR = 0x80

CMD_CE = 257
CMD_DW = 280
CMD_DP = 282
CMD_CC = 272
CMD_RA = 258
CMD_AS = 274

AVP_RESULT_CODE = 268
AVP_EXPERIMENTAL_RESULT = 297
AVP_EXPERIMENTAL_RESULT_CODE = 298
AVP_MSCC = 456

_U32 = struct.Struct(">I")
_AVP_HEAD = struct.Struct(">IB3s")


class FrameError(ValueError):
    """The stream does not hold Diameter messages (version or length wrong)."""


def split_frames(buf: bytearray, max_size: int = 1 << 20) -> list[bytes]:
    """Remove every complete message from the front of ``buf`` and return them."""
    out: list[bytes] = []
    pos, end = 0, len(buf)
    while end - pos >= HEADER:
        if buf[pos] != 1:
            raise FrameError(f"Diameter version {buf[pos]}, expected 1")
        length = int.from_bytes(buf[pos + 1 : pos + 4], "big")
        if length < HEADER or length > max_size or length % 4:
            raise FrameError(f"message length {length}")
        if end - pos < length:
            break
        out.append(bytes(buf[pos : pos + length]))
        pos += length
    if pos:
        del buf[:pos]
    return out


@dataclass(frozen=True, slots=True)
class Header:
    flags: int
    command: int
    application: int
    hop_by_hop: int
    end_to_end: int

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)


_HEAD = struct.Struct(">B3sB3sIII")


def header(data: bytes) -> Header:
    _, _, flags, cmd, app, hbh, e2e = _HEAD.unpack_from(data, 0)
    return Header(flags, int.from_bytes(cmd, "big"), app, hbh, e2e)


def _avps(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(code, value offset, value end) of each AVP in data[start:end]."""
    out = []
    pos = start
    while end - pos >= 8:
        code, flags, raw_len = _AVP_HEAD.unpack_from(data, pos)
        length = int.from_bytes(raw_len, "big")
        head = 12 if flags & AVP_FLAG_VENDOR else 8
        if length < head or pos + length > end:
            break
        out.append((code, pos + head, pos + length))
        pos += (length + 3) & ~3
    return out


def _u32(data: bytes, start: int, end: int) -> int:
    return int(_U32.unpack_from(data, start)[0]) if end - start == 4 else 0


def result_code(data: bytes) -> int:
    """Result-Code (or Experimental-Result-Code) of an answer; 0 when absent."""
    for code, start, end in _avps(data, HEADER, len(data)):
        if code == AVP_RESULT_CODE:
            return _u32(data, start, end)
        if code == AVP_EXPERIMENTAL_RESULT:
            for inner, s, e in _avps(data, start, end):
                if inner == AVP_EXPERIMENTAL_RESULT_CODE:
                    return _u32(data, s, e)
    return 0


def mscc_result_codes(data: bytes) -> list[int]:
    """The Result-Code inside each MSCC of a CCA (RFC 4006 §8.16), in order."""
    out = []
    for code, start, end in _avps(data, HEADER, len(data)):
        if code == AVP_MSCC:
            for inner, s, e in _avps(data, start, end):
                if inner == AVP_RESULT_CODE:
                    out.append(_u32(data, s, e))
    return out


def top_level_avps(data: bytes) -> list[tuple[int, int, int]]:
    """(code, AVP start, AVP end with padding) of each top-level AVP of a message."""
    out = []
    pos, end = HEADER, len(data)
    while end - pos >= 8:
        code, _, raw_len = _AVP_HEAD.unpack_from(data, pos)
        length = int.from_bytes(raw_len, "big")
        if length < 8 or pos + length > end:
            break
        padded = min(end, pos + ((length + 3) & ~3))
        out.append((code, pos, padded))
        pos = padded
    return out
