"""OSC in and out (python-osc for parsing, plain UDP sockets for transport).

The input side is a thread that blocks on one UDP socket. For each datagram it only validates, timestamps
(``time.perf_counter_ns()``) and hands an immutable event to ``submit`` (the engine's queue): no sleeping, no
engine state, no lock. Everything bad (undecodable datagrams, unknown addresses, wrong types or arity,
out-of-range values, NaN/inf, senders outside the allow-list, floods above the rate limit) is counted here
and reported to the engine as an :class:`InputError` at a limited rate, so a flood of garbage cannot flood
the engine's queue too. The engine keeps time whatever arrives.

The output side, :class:`OscSink`, implements :class:`~liveagent.live.events.OutputSink`. Notes and beats
are the hot path: their OSC headers (address + type tags) are built once, so a note is one ``struct.pack``
and one ``sendto``. The address space is documented in ``docs/OSC.md``; the addresses below are fixed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from liveagent.live.events import (
    FOLLOW_WINDOW_LIMIT_MS,
    FOLLOW_WINDOW_MIN_FIXED_MS,
    Control,
    ControlEvent,
    InputError,
    InputEvent,
    NoteEvent,
)

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


# ---------------------------------------------------------------------------------------------- input


@dataclass
class OscServerConfig:
    """Where and how the OSC input listens."""

    host: str = "127.0.0.1"
    """Bind address. Anything but loopback needs ``allow`` (an explicit client allow-list)."""
    port: int = DEFAULT_IN_PORT
    """UDP port (0 = pick a free one; the bound port is then ``OscServer.port``)."""
    allow: tuple[str, ...] = ()
    """Client addresses or networks (``10.0.0.5``, ``192.168.1.0/24``) allowed to send; empty = loopback."""
    max_rate: float = 2000.0
    """Messages per second accepted (token bucket); above it messages are dropped and counted as a flood."""
    burst: float = 500.0
    """Token-bucket depth: how many messages may arrive at once before the rate limit bites."""
    error_reports_per_s: float = 4.0
    """At most this many :class:`InputError` per second reach the engine; the rest are counted only."""


@dataclass
class OscCounters:
    """Input counters, written only by the server thread (readers see a consistent-enough snapshot)."""

    datagrams: int = 0
    messages: int = 0
    accepted: int = 0
    errors: int = 0
    """Rejected messages of every kind (sum of the ``by_kind`` entries)."""
    flood_dropped: int = 0
    denied: int = 0
    reported: int = 0
    suppressed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, object]:
        return {
            "datagrams": self.datagrams,
            "messages": self.messages,
            "accepted": self.accepted,
            "errors": self.errors,
            "flood_dropped": self.flood_dropped,
            "denied": self.denied,
            "reported": self.reported,
            "suppressed": self.suppressed,
            "by_kind": dict(self.by_kind),
        }


class MessageError(ValueError):
    """A message that decoded but breaks the address space; ``kind`` names the counter."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _int_arg(addr: str, v: object, lo: int, hi: int, what: str) -> int:
    """An integer argument in ``lo..hi``. Integral floats are accepted: Pd and Max send floats by default."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MessageError("type", f"{addr}: {what} must be a number, got {type(v).__name__}")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise MessageError("nonfinite", f"{addr}: {what} is not finite ({v})")
        if v != int(v):
            raise MessageError("type", f"{addr}: {what} must be an integer, got {v}")
        v = int(v)
    if not lo <= v <= hi:
        raise MessageError("range", f"{addr}: {what} {v} outside {lo}..{hi}")
    return v


def _float_arg(addr: str, v: object, lo: float, hi: float, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MessageError("type", f"{addr}: {what} must be a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f):
        raise MessageError("nonfinite", f"{addr}: {what} is not finite ({f})")
    if not lo <= f <= hi:
        raise MessageError("range", f"{addr}: {what} {f:g} outside {lo:g}..{hi:g}")
    return f


def _arity(addr: str, params: list[Any], lo: int, hi: int | None = None) -> None:
    hi = lo if hi is None else hi
    if not lo <= len(params) <= hi:
        want = str(lo) if lo == hi else f"{lo}..{hi}"
        raise MessageError("arity", f"{addr}: expects {want} argument(s), got {len(params)}")


def decode(addr: str, params: list[Any], t_ns: int, reply_to: tuple[str, int] | None) -> InputEvent:
    """One validated OSC message -> one input event; raises :class:`MessageError`. Pure (tests call it)."""
    if addr == "/liveagent/note":
        _arity(addr, params, 2)
        pitch = _int_arg(addr, params[0], 0, 127, "pitch")
        vel = _int_arg(addr, params[1], 0, 127, "velocity")
        return NoteEvent(t_ns, pitch, vel, "osc")
    if addr == "/liveagent/noteoff":
        _arity(addr, params, 1)
        return NoteEvent(t_ns, _int_arg(addr, params[0], 0, 127, "pitch"), 0, "osc")
    if addr == "/liveagent/tempo":
        _arity(addr, params, 1)
        bpm = _float_arg(addr, params[0], BPM_MIN, BPM_MAX, "bpm")
        return ControlEvent(t_ns, Control.TEMPO, bpm, reply_to=reply_to)
    if addr == "/liveagent/beat":
        _arity(addr, params, 0, 1)
        beat = _int_arg(addr, params[0], 0, 63, "beat") if params else -1
        return ControlEvent(t_ns, Control.BEAT, float(beat), reply_to=reply_to)
    if addr == "/liveagent/temperature":
        _arity(addr, params, 1)
        temp = _float_arg(addr, params[0], 0.0, TEMPERATURE_MAX, "temperature")
        return ControlEvent(t_ns, Control.TEMPERATURE, temp, reply_to=reply_to)
    if addr == "/liveagent/follow":
        _arity(addr, params, 1)
        window = _float_arg(addr, params[0], 0.0, FOLLOW_WINDOW_LIMIT_MS, "window_ms")
        if 0.0 < window < FOLLOW_WINDOW_MIN_FIXED_MS:  # would round to nothing and read like "adaptive"
            raise MessageError(
                "range",
                f"{addr}: window_ms {window:g} must be 0 (adaptive) or >= {FOLLOW_WINDOW_MIN_FIXED_MS:g}",
            )
        return ControlEvent(t_ns, Control.FOLLOW, window, reply_to=reply_to)
    if addr == "/liveagent/mute":
        _arity(addr, params, 1)
        return ControlEvent(
            t_ns, Control.MUTE, float(_int_arg(addr, params[0], 0, 1, "mute")), reply_to=reply_to
        )
    if addr == "/liveagent/policy":
        _arity(addr, params, 1)
        name = params[0]
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_POLICY_NAME or "\0" in name:
            raise MessageError("type", f"{addr}: expects a non-empty policy name or path (string)")
        return ControlEvent(t_ns, Control.POLICY, text=name.strip(), reply_to=reply_to)
    kind = _NO_ARG.get(addr)
    if kind is not None:
        _arity(addr, params, 0)
        return ControlEvent(t_ns, kind, reply_to=reply_to)
    raise MessageError("unknown_address", f"unknown address {addr[:80]!r}")


_NO_ARG: dict[str, Control] = {
    "/liveagent/start": Control.START,
    "/liveagent/stop": Control.STOP,
    "/liveagent/continue": Control.CONTINUE,
    "/liveagent/panic": Control.PANIC,
    "/liveagent/status": Control.STATUS,
}

ADDRESSES_IN: tuple[str, ...] = (
    "/liveagent/note",
    "/liveagent/noteoff",
    "/liveagent/tempo",
    "/liveagent/beat",
    "/liveagent/temperature",
    "/liveagent/mute",
    "/liveagent/policy",
    "/liveagent/follow",
    *_NO_ARG,
)


class OscServer:
    """The OSC input thread. ``submit`` receives each accepted event (and rate-limited errors)."""

    def __init__(
        self,
        submit: Callable[[InputEvent], None],
        config: OscServerConfig | None = None,
        status_handler: Callable[[tuple[str, int]], None] | None = None,
    ) -> None:
        self.config = config or OscServerConfig()
        self.submit = submit
        self.status_handler = status_handler
        """Answers ``/liveagent/status`` on this thread (so the engine thread never pays for a snapshot);
        None = submit a STATUS event to the engine."""
        self.counters = OscCounters()
        self._allow = [ipaddress.ip_network(a, strict=False) for a in self.config.allow]
        if not is_loopback(self.config.host) and not self._allow:
            raise ValueError(
                f"refusing to bind OSC to non-loopback {self.config.host!r} without an allow-list "
                "(--osc-allow ADDR[,ADDR...])"
            )
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind((self.config.host, self.config.port))
        except OSError as e:
            self.sock.close()
            raise OSError(f"cannot bind OSC input to {self.config.host}:{self.config.port}: {e}") from e
        self.port: int = self.sock.getsockname()[1]
        self.host: str = self.config.host
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tokens = self.config.burst
        self._last_ns = time.perf_counter_ns()
        self._report_tokens = max(1.0, self.config.error_reports_per_s)
        self._allowed_cache: dict[str, bool] = {}

    # -- lifecycle
    def start(self) -> OscServer:
        self._thread = threading.Thread(target=self._loop, name="osc-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        # wake the blocking recvfrom with an empty datagram to ourselves (shutdown() does not, for UDP)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        with contextlib.suppress(OSError), socket.socket(self.sock.family, socket.SOCK_DGRAM) as w:
            w.sendto(b"", (host, self.port))
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.sock.close()

    # -- the thread
    def _loop(self) -> None:
        sock = self.sock
        sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            if not data and self._stop.is_set():
                break
            self.handle_datagram(data, (addr[0], addr[1]), time.perf_counter_ns())

    def _allowed(self, host: str) -> bool:
        ok = self._allowed_cache.get(host)
        if ok is None:
            try:
                ip = ipaddress.ip_address(host)
                ok = any(ip in net for net in self._allow) if self._allow else ip.is_loopback
            except ValueError:
                ok = False
            if len(self._allowed_cache) < 4096:
                self._allowed_cache[host] = ok
        return ok

    def handle_datagram(self, data: bytes, sender: tuple[str, int], t_ns: int) -> None:
        """Validate one datagram and submit its event(s). Runs on the server thread (tests call it too)."""
        c = self.counters
        c.datagrams += 1
        if not self._allowed(sender[0]):
            c.denied += 1
            self._reject("denied", f"sender {sender[0]} is not in the allow-list", None, t_ns)
            return
        # token bucket: one token per datagram
        elapsed = max(0, t_ns - self._last_ns) * 1e-9
        self._last_ns = t_ns
        self._tokens = min(self.config.burst, self._tokens + elapsed * self.config.max_rate)
        self._report_tokens = min(
            max(1.0, self.config.error_reports_per_s),
            self._report_tokens + elapsed * self.config.error_reports_per_s,
        )
        if self._tokens < 1.0:
            c.flood_dropped += 1
            self._reject("flood", f"input above {self.config.max_rate:g} msg/s: dropped", sender, t_ns)
            return
        self._tokens -= 1.0
        try:
            if data[:8] == b"#bundle\0":
                messages = list(_flatten(OscBundle(data)))
            else:
                messages = [OscMessage(data)]
        except Exception as e:  # any decoder failure is bad input, never a crash
            self._reject(
                "undecodable", f"undecodable datagram ({len(data)} bytes): {type(e).__name__}", sender, t_ns
            )
            return
        for msg in messages:
            c.messages += 1
            try:
                event = decode(msg.address, msg.params, t_ns, sender)
            except MessageError as e:
                self._reject(e.kind, str(e), sender, t_ns)
                continue
            c.accepted += 1
            if (
                self.status_handler is not None
                and type(event) is ControlEvent
                and event.kind == Control.STATUS
            ):
                self.status_handler(sender)
            else:
                self.submit(event)

    def _reject(self, kind: str, message: str, sender: tuple[str, int] | None, t_ns: int) -> None:
        c = self.counters
        if kind != "flood" and kind != "denied":
            c.errors += 1
        c.by_kind[kind] = c.by_kind.get(kind, 0) + 1
        if self._report_tokens >= 1.0:
            self._report_tokens -= 1.0
            c.reported += 1
            if c.suppressed:
                message = f"{message} (+{c.suppressed} more suppressed)"
                c.suppressed = 0
            self.submit(InputError(t_ns, "osc", message, sender))
        else:
            c.suppressed += 1


def _flatten(bundle: OscBundle) -> Iterable[OscMessage]:
    """Messages of a bundle, nested bundles included; time tags are ignored (everything is "now")."""
    for item in bundle:
        if isinstance(item, OscBundle):
            yield from _flatten(item)
        else:
            yield item


# --------------------------------------------------------------------------------------------- output

_II = struct.Struct(">ii")


@dataclass
class OscSinkConfig:
    """Where the OSC output goes."""

    out: tuple[str, int] = ("127.0.0.1", DEFAULT_OUT_PORT)
    """Notes, beats, status and errors go here."""
    reply: str = "both"
    """Where replies (status, errors) to a client go: "sender", "out", or "both"."""
    beats: bool = True
    """Send ``/liveagent/out/beat`` on every beat."""


class OscSink:
    """OutputSink over OSC/UDP. Notes and beats use prebuilt headers: one pack and one sendto each.

    ``sock`` may be shared with an :class:`OscServer` so replies come from the server's port; by default the
    sink owns a socket of its own. Send errors (nobody listening, buffer full) are counted, never raised:
    the engine must keep time whatever the network does.
    """

    def __init__(self, config: OscSinkConfig | None = None, sock: socket.socket | None = None) -> None:
        self.config = config or OscSinkConfig()
        self.out = self.config.out
        family = socket.AF_INET6 if ":" in self.out[0] else socket.AF_INET
        self._own = sock is None
        self.sock = sock or socket.socket(family, socket.SOCK_DGRAM)
        self._note_hdr = osc_header(OUT_NOTE, "ii")
        self._beat_hdr = osc_header(OUT_BEAT, "ii")
        self._note_off = [self._note_hdr + _II.pack(p, 0) for p in range(128)]
        self.send_errors = 0
        self.sent = 0

    def _send(self, data: bytes, dest: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, dest)
            self.sent += 1
        except OSError:
            self.send_errors += 1

    def note_on(self, pitch: int, velocity: int) -> None:
        self._send(self._note_hdr + _II.pack(pitch, velocity), self.out)

    def note_off(self, pitch: int) -> None:
        self._send(self._note_off[pitch], self.out)

    def all_notes_off(self) -> None:
        for p in range(128):
            self._send(self._note_off[p], self.out)

    def beat(self, bar: int, beat: int) -> None:
        if self.config.beats:
            self._send(self._beat_hdr + _II.pack(bar, beat), self.out)

    def _dests(self, reply_to: tuple[str, int] | None) -> list[tuple[str, int]]:
        mode = self.config.reply
        dests: list[tuple[str, int]] = []
        if reply_to is not None and mode in ("sender", "both"):
            dests.append(reply_to)
        if (reply_to is None or mode in ("out", "both")) and self.out not in dests:
            dests.append(self.out)
        return dests

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None:
        """``/liveagent/status key value key value ...`` (flat pairs: easy to route in Pd and Max)."""
        args: list[object] = []
        for k, v in fields.items():
            if isinstance(v, dict):
                continue
            if isinstance(v, list | tuple):
                v = " ".join(str(x) for x in v)
            args += [k, v]
        data = build_message(OUT_STATUS, args)
        for d in self._dests(reply_to):
            self._send(data, d)

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        data = build_message(OUT_ERROR, [message[:500]])
        for d in self._dests(reply_to):
            self._send(data, d)

    def close(self) -> None:
        if self._own:
            self.sock.close()
