"""OSC in and out (python-osc for parsing, plain UDP sockets for transport).

The input side is a thread that blocks on one UDP socket. For each datagram it only validates, timestamps
(``time.perf_counter_ns()``) and hands an immutable event to ``submit`` (the engine's queue): no sleeping, no
engine state, no lock. Everything bad (undecodable datagrams, unknown addresses, wrong types or arity,
out-of-range values, NaN/inf, senders outside the allow-list, floods above the rate limit) is counted here
and reported to the engine as an :class:`InputError` at a limited rate, so a flood of garbage cannot flood
the engine's queue too. The engine keeps time whatever arrives.

The wire format and the bounded parser are in :mod:`~liveagent.live.io.osc_wire`, the output side
(:class:`OscSink`) in :mod:`~liveagent.live.io.osc_out`; both are re-exported here. The rate limits and the
counting of refused messages are in :mod:`~liveagent.live.io.osc_limits`. The address space is
documented in ``docs/OSC.md``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from liveagent.live.events import (
    FOLLOW_WINDOW_LIMIT_MS,
    FOLLOW_WINDOW_MIN_FIXED_MS,
    Control,
    ControlEvent,
    InputEvent,
    NoteEvent,
)
from liveagent.live.io.osc_limits import OscCounters, OscLimits, Sender
from liveagent.live.io.osc_out import (
    STATUS_REPLY_MAX_AGE_NS,
    OscSink,
    OscSinkConfig,
    encode_status,
    resolve_udp,
)
from liveagent.live.io.osc_wire import (
    BPM_MAX,
    BPM_MIN,
    DEFAULT_IN_PORT,
    DEFAULT_OUT_PORT,
    MAX_ARGS,
    MAX_BUNDLE_DEPTH,
    MAX_ELEMENTS,
    MAX_POLICY_NAME,
    MAX_REPLY_BYTES,
    MAX_REPLY_STRING,
    OUT_BEAT,
    OUT_ERROR,
    OUT_NOTE,
    OUT_STATUS,
    PREFIX,
    TEMPERATURE_MAX,
    DatagramError,
    build_message,
    is_loopback,
    message_spans,
    osc_header,
    osc_string,
    parse_datagram,
    parse_host_port,
    parse_message,
)
from liveagent.live.style_rules import MAX_MOOD_NAME, StyleError, check_values, clean_mood_name

__all__ = [
    "DEFAULT_IN_PORT",
    "DEFAULT_OUT_PORT",
    "MAX_ARGS",
    "MAX_BUNDLE_DEPTH",
    "MAX_ELEMENTS",
    "MAX_MOOD_NAME",
    "MAX_POLICY_NAME",
    "MAX_REPLY_BYTES",
    "MAX_REPLY_STRING",
    "OUT_BEAT",
    "OUT_ERROR",
    "OUT_NOTE",
    "OUT_STATUS",
    "PREFIX",
    "STATUS_REPLY_MAX_AGE_NS",
    "TEMPERATURE_MAX",
    "DatagramError",
    "MessageError",
    "OscServer",
    "OscServerConfig",
    "OscSink",
    "OscSinkConfig",
    "build_message",
    "decode",
    "encode_status",
    "is_loopback",
    "message_spans",
    "osc_header",
    "osc_string",
    "parse_datagram",
    "parse_host_port",
    "parse_message",
    "resolve_udp",
]

log = logging.getLogger(__name__)


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
    quiet_rate: float = 250.0
    """A sender that stays under this many messages per second (a performer) still gets through when
    louder senders have used up the shared ``max_rate``: one flood cannot starve everybody else."""
    quiet_burst: float = 64.0
    """How many messages at once a quiet sender may send past an exhausted shared limit (chords)."""
    max_senders: int = 256
    """Senders (address + port) with buckets of their own. When the table is full a new sender takes the
    place of the least recently seen *noisy* one (one that went over a limit in the last 10 s), else of a
    sender idle for 2 s that never sent a note, else of one idle for 60 s; a quiet performer keeps its
    place through any flood. Else the newcomer shares one overflow sender."""
    new_senders_per_s: float = 100.0
    """New sender places per second per source address (burst as many): a flood that cycles through more
    source ports than there are places cannot make the input thread look for a place to free (a scan of
    the table) on every datagram. A newcomer's quiet-sender allowance starts at ``NEW_SENDER_QUIET``
    messages (a chord), not full, so churning ports buy little with each new place."""
    max_hosts: int = 256
    """Source addresses (IP) with aggregate limits of their own; more share one."""
    status_replies_per_s: float = 50.0
    """``/liveagent/status`` replies per second per sender (burst 20; a monitor polls at 10/s); more
    requests are counted (``status_limited``), not answered."""
    status_replies_total_per_s: float = 200.0
    """``/liveagent/status`` replies per second for all senders together (burst 50)."""
    control_rate: float = 100.0
    """Control messages (transport, tempo, beat, temperature, mute, follow, panic, policy) per second per
    sender (notes and status requests have limits of their own): each costs the engine thread far more
    than a note (a ``/panic`` sends 128 note-offs), and no patch or person sends 100 a second."""
    control_burst: float = 20.0
    """How many control messages at once a sender may send before ``control_rate`` bites. The same
    limit applies to all the ports of one address together (one machine cannot multiply it by opening
    sockets)."""
    control_total_rate: float = 200.0
    """Control messages per second from all senders together (burst ``control_total_burst``): 40 sockets
    each sending ``/panic`` under the per-sender limit backed the engine's queue up for tens of seconds."""
    control_total_burst: float = 50.0
    transport_rate: float = 20.0
    """``/start``, ``/stop`` and ``/continue`` per second per address (burst 10): their own budget, which
    no flood of other controls (or notes) can use up."""
    panic_interval_ms: float = 50.0
    """At most one ``/panic`` per this interval reaches the engine (each sends 128 note-offs); the
    repeats are collapsed into it and counted (``panic_collapsed``)."""
    policy_loads_per_s: float = 2.0
    """``/liveagent/policy`` requests per second passed to the engine (burst 2); more are refused."""


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
    if addr == "/liveagent/style":  # the latent or the pad; the policy-dependent rules: engine/style.py
        try:
            values = check_values(params, addr)
        except StyleError as e:
            raise MessageError(e.kind, str(e)) from None
        return ControlEvent(t_ns, Control.STYLE, reply_to=reply_to, values=values)
    if addr == "/liveagent/mood":
        _arity(addr, params, 1)
        try:
            mood = clean_mood_name(params[0])
        except StyleError as e:
            raise MessageError("type", f"{addr}: {e}") from None
        return ControlEvent(t_ns, Control.MOOD, text=mood, reply_to=reply_to)
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
    "/liveagent/style",
    "/liveagent/mood",
    *_NO_ARG,
)


class OscServer:
    """The OSC input thread. ``submit`` receives each accepted event (and rate-limited errors).

    Per datagram: allow-list, then :func:`parse_datagram` (bounded; a malformed datagram is refused whole),
    then per message the rate limit (each sender has its own bucket of ``max_rate``; all share one more of
    ``max_rate``, past which only quiet senders get through), decoding, and the status/policy limits.
    """

    def __init__(
        self,
        submit: Callable[[InputEvent], None],
        config: OscServerConfig | None = None,
        status_handler: Callable[[tuple[str, int]], None] | None = None,
    ) -> None:
        self.config = config or OscServerConfig()
        self.submit = submit
        self.status_handler = status_handler
        """Answers ``/liveagent/status`` on this thread from the engine's published snapshot (the engine
        thread never pays for a request); None = submit a STATUS event to the engine. Either way the
        replies are rate-limited per sender and in total."""
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
        now = time.perf_counter_ns()
        self.limits = OscLimits(self.config, self.counters, submit, now)
        """The rate limits, the sender and address tables, and the counting of refused messages."""
        self._last_data: bytes | None = None
        self._last_spans: list[tuple[int, int]] = []
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

    @property
    def _senders(self) -> dict[tuple[str, int], Sender]:
        """The sender table of :attr:`limits` (tests look into it)."""
        return self.limits.senders

    def handle_datagram(self, data: bytes, sender: tuple[str, int], t_ns: int) -> None:
        """Validate one datagram and submit its event(s). Runs on the server thread (tests call it too)."""
        c = self.counters
        limits = self.limits
        c.datagrams += 1
        if not self._allowed(sender[0]):
            c.denied += 1
            limits.reject("denied", f"sender {sender[0]} is not in the allow-list", None, t_ns)
            return
        try:
            spans = self._spans(data)
        except DatagramError as e:
            self._undecodable(e, len(data), sender, t_ns)
            return
        host = limits.host(sender[0], t_ns)
        st = limits.sender(sender, host, t_ns)
        limits.refill(st, host, t_ns)
        c.messages += len(spans)
        dropped = 0
        for i, (start, end) in enumerate(spans):
            if not limits.reserved(data, start, end) and not limits.admit(st, host, t_ns):
                # This message and the rest of the datagram (reserved addresses included): no bucket
                # refills within a datagram. Checking a flood's 60-message bundles one message at a time
                # cost ~75 us a datagram: the input thread fell behind, the kernel dropped the socket's
                # overflow, and a performer's notes with it.
                dropped = len(spans) - i
                break
            try:
                address, params = parse_message(data, start, end)
                event = decode(address, params, t_ns, sender)
            except DatagramError as e:
                self._undecodable(e, end - start, sender, t_ns)
                continue
            except MessageError as e:
                limits.reject(e.kind, str(e), sender, t_ns)
                continue
            if type(event) is ControlEvent:
                if event.kind == Control.STATUS:
                    self._status(st, sender, event, t_ns)
                    continue
                if not limits.control(st, host, event.kind, sender, t_ns):
                    continue
                if event.kind == Control.POLICY and not limits.policy_load(sender, t_ns):
                    continue
            elif type(event) is NoteEvent:
                st.notes = True
            c.accepted += 1
            self.submit(event)
        if dropped:  # one count and at most one report per datagram, however many messages it held
            limits.flooded(st, dropped, sender, t_ns)

    def _spans(self, data: bytes) -> list[tuple[int, int]]:
        """:func:`message_spans` of ``data``, remembered for the last datagram: a flood repeats the same
        bytes, and comparing them costs far less than walking a bundle again."""
        if data == self._last_data:
            return self._last_spans
        spans = message_spans(data)
        self._last_data, self._last_spans = data, spans
        return spans

    def _undecodable(self, e: DatagramError, size: int, sender: tuple[str, int], t_ns: int) -> None:
        c = self.counters
        c.undecodable += 1
        c.by_reason[e.reason] = c.by_reason.get(e.reason, 0) + 1
        self.limits.reject("undecodable", f"undecodable OSC ({size} bytes): {e}", sender, t_ns)

    def _status(self, st: Sender, sender: tuple[str, int], event: ControlEvent, t_ns: int) -> None:
        """A status request: answered within the reply limits (:meth:`OscLimits.status_reply`)."""
        self.counters.accepted += 1
        if not self.limits.status_reply(st, t_ns):
            return
        if self.status_handler is not None:
            self.status_handler(sender)
        else:
            self.submit(event)
