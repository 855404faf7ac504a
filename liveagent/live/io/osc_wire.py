"""OSC on the wire: the address space's fixed names and limits, message encoding, and the bounded parser
every input datagram goes through before anything is dispatched (sizes, nesting, counts, truncation,
padding: a datagram refused whole raises :class:`DatagramError` with its reason). No I/O here.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import struct
from collections.abc import Callable, Iterable
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

log = logging.getLogger(__name__)

PREFIX = "/liveagent"
OUT_NOTE = "/liveagent/out/note"
OUT_BEAT = "/liveagent/out/beat"
OUT_STATUS = "/liveagent/status"
OUT_ERROR = "/liveagent/error"

DEFAULT_IN_PORT = 9000
DEFAULT_OUT_PORT = 9001
BPM_MIN, BPM_MAX = 20.0, 400.0
TEMPERATURE_MAX = 10.0
MAX_POLICY_NAME = 1024
MAX_BUNDLE_DEPTH = 4
"""Bundles nested deeper than this (a bundle in a bundle in ...) are refused whole."""
MAX_ELEMENTS = 64
"""Elements (messages and nested bundles) per datagram; a chord is a few, 700 is an attack."""
MAX_ARGS = 32
"""Arguments per message (no address takes more than 2)."""
MAX_REPLY_BYTES = 8192
"""A status reply is cut to this size (whole key/value pairs), so a 20-byte request buys a bounded answer."""
MAX_REPLY_STRING = 256
"""Longer string values in a status reply are cut to this many characters."""


def osc_string(s: str) -> bytes:
    """An OSC string: UTF-8, NUL-terminated, padded to a multiple of 4 bytes."""
    b = s.encode("utf-8") + b"\0"
    return b + b"\0" * (-len(b) % 4)


def osc_header(address: str, tags: str) -> bytes:
    """Address + type-tag string of a message, prebuilt once so the hot path only packs arguments."""
    return osc_string(address) + osc_string("," + tags)


def build_message(address: str, args: Iterable[Any] = ()) -> bytes:
    """A complete OSC datagram (cold path: status, errors)."""
    b = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(int(a), "i")
        elif isinstance(a, int):
            b.add_arg(a, "i" if -(2**31) <= a < 2**31 else "h")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        elif a is None:
            b.add_arg("", "s")
        else:
            b.add_arg(str(a), "s")
    return b.build().dgram


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` -> (host, port); raises ``ValueError`` with a clear message."""
    host, sep, port_s = text.rpartition(":")
    if not sep:
        host, port_s = "", text
    host = host.strip("[]") or default_host
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"bad HOST:PORT {text!r}: port is not an integer") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad HOST:PORT {text!r}: port must be 1..65535")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------ parsing


class DatagramError(ValueError):
    """A datagram that is not well-formed OSC; ``reason`` names the counter (``OscCounters.by_reason``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_I32 = struct.Struct(">i")
_F32 = struct.Struct(">f")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")
_FIXED: dict[str, tuple[int, Callable[[bytes, int], Any]]] = {
    "i": (4, lambda d, p: _I32.unpack_from(d, p)[0]),
    "f": (4, lambda d, p: _F32.unpack_from(d, p)[0]),
    "h": (8, lambda d, p: _I64.unpack_from(d, p)[0]),
    "d": (8, lambda d, p: _F64.unpack_from(d, p)[0]),
    "t": (8, lambda d, p: _I64.unpack_from(d, p)[0]),
    "c": (4, lambda d, p: chr(_I32.unpack_from(d, p)[0] & 0x10FFFF)),
    "r": (4, lambda d, p: _I32.unpack_from(d, p)[0]),
    "m": (4, lambda d, p: tuple(d[p : p + 4])),
}
_NO_DATA: dict[str, object] = {"T": True, "F": False, "N": None, "I": math.inf}
_BUNDLE_TAG = b"#bundle\0"


def _read_string(data: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    """An OSC string at ``pos``: NUL-terminated, zero-padded to 4 bytes, all within ``end``."""
    nul = data.find(b"\0", pos, end)
    if nul < 0:
        raise DatagramError("truncated", f"{what}: string without its NUL terminator")
    nxt = pos + ((nul - pos) // 4 + 1) * 4
    if nxt > end:
        raise DatagramError("truncated", f"{what}: string padding runs past the end")
    if data.count(0, nul, nxt) != nxt - nul:
        raise DatagramError("padding", f"{what}: non-zero string padding")
    try:
        return data[pos:nul].decode("utf-8"), nxt
    except UnicodeDecodeError:
        raise DatagramError("bad_string", f"{what}: string is not UTF-8") from None


def parse_message(data: bytes, pos: int = 0, end: int | None = None) -> tuple[str, list[Any]]:
    """(address, arguments) of the OSC message in ``data[pos:end]``; raises :class:`DatagramError`.

    Strict where python-osc is lenient: arguments the type tags promise must all be there (python-osc pads
    a missing float with zeros, so a truncated note read as a note-off), nothing may follow them, and
    every loop is bounded by the bytes present.
    """
    end = len(data) if end is None else end
    address, pos = _read_string(data, pos, end, "address")
    if not address.startswith("/"):
        raise DatagramError("not_osc", f"address must start with '/', got {address[:40]!r}")
    if pos == end:
        return address, []  # no type tag string: an OSC 1.0 message without arguments
    tags, pos = _read_string(data, pos, end, "type tags")
    if not tags.startswith(","):
        raise DatagramError("type_tag", "type tag string must start with ','")
    if len(tags) - 1 > MAX_ARGS:
        raise DatagramError("too_many_args", f"{len(tags) - 1} arguments (at most {MAX_ARGS})")
    params: list[Any] = []
    for tag in tags[1:]:
        fixed = _FIXED.get(tag)
        if fixed is not None:
            size, read = fixed
            if pos + size > end:
                raise DatagramError("truncated", f"{address[:80]}: argument '{tag}' runs past the end")
            params.append(read(data, pos))
            pos += size
        elif tag in _NO_DATA:
            params.append(_NO_DATA[tag])
        elif tag in "sS":
            text, pos = _read_string(data, pos, end, "string argument")
            params.append(text)
        elif tag == "b":
            if pos + 4 > end:
                raise DatagramError("truncated", f"{address[:80]}: blob size runs past the end")
            n = _I32.unpack_from(data, pos)[0]
            nxt = pos + 4 + n + (-n % 4)
            if n < 0 or nxt > end:
                raise DatagramError("truncated", f"{address[:80]}: blob of {n} bytes does not fit")
            params.append(bytes(data[pos + 4 : pos + 4 + n]))
            pos = nxt
        else:
            raise DatagramError("type_tag", f"{address[:80]}: unsupported type tag {tag!r}")
    if pos != end:
        raise DatagramError("trailing", f"{address[:80]}: {end - pos} bytes after the last argument")
    return address, params


def parse_datagram(data: bytes) -> list[tuple[str, list[Any]]]:
    """Every message of one datagram (a message, or a bundle with nested bundles flattened in order; time
    tags are ignored): :func:`message_spans`, then :func:`parse_message` of each. Raises
    :class:`DatagramError`."""
    return [parse_message(data, a, b) for a, b in message_spans(data)]


def message_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every message of one datagram, its bundle structure validated; the messages
    themselves are not parsed yet (the input thread parses only those the rate limit admits, so a flood of
    big bundles costs a walk over their sizes, not a parse of every message).

    Raises :class:`DatagramError`. Bounded: element sizes must be positive multiples of 4 inside their
    bundle, at most :data:`MAX_BUNDLE_DEPTH` levels and :data:`MAX_ELEMENTS` elements, so no datagram can
    make this loop more than a few hundred times (python-osc's bundle parser looped forever on a negative
    size)."""
    if not data:
        raise DatagramError("empty", "empty datagram")
    if len(data) % 4:
        raise DatagramError("size", f"datagram of {len(data)} bytes is not a multiple of 4")
    if data[:8] == _BUNDLE_TAG:
        out: list[tuple[int, int]] = []
        _bundle_spans(data, 0, len(data), 1, out)
        return out
    if data[:1] == b"/":
        return [(0, len(data))]
    raise DatagramError("not_osc", "neither an OSC message nor a bundle")


def _bundle_spans(data: bytes, pos: int, end: int, depth: int, out: list[tuple[int, int]]) -> None:
    if depth > MAX_BUNDLE_DEPTH:
        raise DatagramError("too_deep", f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    pos += 16  # "#bundle\0" + time tag
    if pos > end:
        raise DatagramError("truncated", "bundle shorter than its header")
    while pos < end:
        if pos + 4 > end:
            raise DatagramError("truncated", "bundle element size runs past the end")
        size = _I32.unpack_from(data, pos)[0]
        pos += 4
        if size <= 0 or size % 4 or pos + size > end:
            raise DatagramError("element_size", f"bundle element size {size} is invalid here")
        if len(out) >= MAX_ELEMENTS:
            raise DatagramError("too_many", f"more than {MAX_ELEMENTS} elements in one datagram")
        if data[pos : pos + 8] == _BUNDLE_TAG:
            _bundle_spans(data, pos, pos + size, depth + 1, out)
        elif data[pos : pos + 1] == b"/":
            out.append((pos, pos + size))
        else:
            raise DatagramError("not_osc", "a bundle element that is neither a message nor a bundle")
        pos += size


# ---------------------------------------------------------------------------------------------- input
