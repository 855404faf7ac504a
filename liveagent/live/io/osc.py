"""OSC in and out (python-osc for parsing, plain UDP sockets for transport).

The input side is a thread that blocks on one UDP socket. For each datagram it only validates, timestamps
(``time.perf_counter_ns()``) and hands an immutable event to ``submit`` (the engine's queue): no sleeping, no
engine state, no lock. Everything bad (undecodable datagrams, unknown addresses, wrong types or arity,
out-of-range values, NaN/inf, senders outside the allow-list, floods above the rate limit) is counted here
and reported to the engine as an :class:`InputError` at a limited rate, so a flood of garbage cannot flood
the engine's queue too. The engine keeps time whatever arrives.

The wire format and the bounded parser are in :mod:`~liveagent.live.io.osc_wire`, the output side
(:class:`OscSink`) in :mod:`~liveagent.live.io.osc_out`; both are re-exported here. The address space is
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
from dataclasses import dataclass, field
from typing import Any

from liveagent.live.events import (
    FOLLOW_WINDOW_LIMIT_MS,
    FOLLOW_WINDOW_MIN_FIXED_MS,
    Control,
    ControlEvent,
    InputError,
    InputEvent,
    NoteEvent,
)
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
    MAX_MOOD_NAME,
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
from liveagent.live.style_rules import StyleError, check_values

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
    "OscCounters",
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


@dataclass
class OscCounters:
    """Input counters, written only by the server thread (readers see a consistent-enough snapshot)."""

    datagrams: int = 0
    messages: int = 0
    """Messages seen in well-formed datagrams (every element of a bundle counts)."""
    accepted: int = 0
    errors: int = 0
    """Rejected datagrams and messages of every kind but ``flood`` and ``denied``."""
    flood_dropped: int = 0
    """Messages dropped by a rate limit (a bundle's messages one by one; control and policy limits too)."""
    denied: int = 0
    undecodable: int = 0
    """Datagrams refused whole by the parser (their reasons in ``by_reason``)."""
    status_limited: int = 0
    """``/liveagent/status`` requests not answered (reply rate limit)."""
    policy_limited: int = 0
    """``/liveagent/policy`` requests refused (load rate limit)."""
    control_limited: int = 0
    """Control messages (all but notes and status requests) dropped by a control rate limit (per sender,
    per address or in total) or, for ``/start``, ``/stop``, ``/continue``, by the transport budget."""
    panic_collapsed: int = 0
    """``/panic`` repeats within ``panic_interval_ms`` of the last one passed on: collapsed into it."""
    senders_evicted: int = 0
    """Sender places given to a newcomer (see ``OscServerConfig.max_senders``)."""
    reported: int = 0
    suppressed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    """Why datagrams were undecodable: ``element_size``, ``too_deep``, ``too_many``, ``truncated``, ..."""

    def snapshot(self) -> dict[str, object]:
        return {
            "datagrams": self.datagrams,
            "messages": self.messages,
            "accepted": self.accepted,
            "errors": self.errors,
            "flood_dropped": self.flood_dropped,
            "denied": self.denied,
            "undecodable": self.undecodable,
            "status_limited": self.status_limited,
            "policy_limited": self.policy_limited,
            "control_limited": self.control_limited,
            "panic_collapsed": self.panic_collapsed,
            "senders_evicted": self.senders_evicted,
            "reported": self.reported,
            "suppressed": self.suppressed,
            "by_kind": dict(self.by_kind),
            "by_reason": dict(self.by_reason),
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
    if addr == "/liveagent/style":  # the latent or the pad; the policy-dependent rules: engine/style.py
        try:
            values = check_values(params, addr)
        except StyleError as e:
            raise MessageError(e.kind, str(e)) from None
        return ControlEvent(t_ns, Control.STYLE, reply_to=reply_to, values=values)
    if addr == "/liveagent/mood":
        _arity(addr, params, 1)
        mood = params[0]
        if not isinstance(mood, str) or not mood.strip() or len(mood) > MAX_MOOD_NAME or "\0" in mood:
            raise MessageError("type", f"{addr}: expects a mood name (string), e.g. calm, busy, neutral")
        return ControlEvent(t_ns, Control.MOOD, text=mood.strip(), reply_to=reply_to)
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


class _Bucket:
    """A token bucket: ``rate`` tokens per second, at most ``depth`` saved up."""

    __slots__ = ("depth", "last_ns", "rate", "tokens")

    def __init__(self, rate: float, depth: float, now_ns: int) -> None:
        self.rate = rate
        self.depth = max(1.0, depth)
        self.tokens = self.depth
        self.last_ns = now_ns

    def refill(self, now_ns: int) -> None:
        elapsed = max(0, now_ns - self.last_ns) * 1e-9
        self.last_ns = now_ns
        self.tokens = min(self.depth, self.tokens + elapsed * self.rate)

    def take(self, now_ns: int) -> bool:
        self.refill(now_ns)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Sender:
    """The limits of one sender (address + port): its messages, its quiet-sender priority, its replies,
    and what eviction needs to know (when it was last seen, last over a limit, whether it sent notes)."""

    __slots__ = ("controls", "msgs", "noisy_ns", "notes", "quiet", "replies", "seen_ns")

    def __init__(self, cfg: OscServerConfig, now_ns: int) -> None:
        self.msgs = _Bucket(cfg.max_rate, cfg.burst, now_ns)
        self.controls = _Bucket(cfg.control_rate, cfg.control_burst, now_ns)
        self.quiet = _Bucket(cfg.quiet_rate, cfg.quiet_burst, now_ns)
        self.replies = _Bucket(cfg.status_replies_per_s, 20.0, now_ns)
        self.seen_ns = now_ns
        self.noisy_ns = -NOISY_MEMORY_NS
        """When a message of this sender last went over a limit (or its quiet allowance ran out)."""
        self.notes = False
        """It sent a note: a performer, whose place an idle newcomer-sweep must not take."""


class _Host:
    """The limits of one source address (all its ports together): messages past the senders' own buckets,
    controls, the transport budget, and how fast it may open new sender places."""

    __slots__ = ("controls", "msgs", "newcomers", "seen_ns", "transport")

    def __init__(self, cfg: OscServerConfig, now_ns: int) -> None:
        self.msgs = _Bucket(cfg.max_rate, cfg.burst, now_ns)
        self.controls = _Bucket(cfg.control_rate, cfg.control_burst, now_ns)
        self.transport = _Bucket(cfg.transport_rate, 10.0, now_ns)
        self.newcomers = _Bucket(cfg.new_senders_per_s, cfg.new_senders_per_s, now_ns)
        self.seen_ns = now_ns


_NOT_ERRORS = frozenset({"flood", "denied", "control_rate", "policy_rate"})
SENDER_IDLE_NS = 2_000_000_000
"""A sender silent this long that never sent a note may lose its place to a new sender (table full)."""
PERFORMER_IDLE_NS = 60_000_000_000
"""A sender that sent notes keeps its place until it has been silent this long (and nobody noisier)."""
NEW_SENDER_QUIET = 4.0
"""A new sender's quiet-sender allowance at first (it refills at ``quiet_rate``): enough for a chord."""
NOISY_MEMORY_NS = 10_000_000_000
"""A sender over a limit within this long is noisy: first to give its place to a newcomer."""
_TRANSPORT = frozenset({Control.START, Control.STOP, Control.CONTINUE})
_RESERVED = frozenset(
    a.encode()
    for a in (
        "/liveagent/start",
        "/liveagent/stop",
        "/liveagent/continue",
        "/liveagent/panic",
        "/liveagent/status",
    )
)
"""Addresses (as they start a message) with budgets of their own, past the message rate limit: a flood
of notes or other controls cannot keep ``/stop``, ``/panic`` or a status request out."""


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
        cfg = self.config
        self._shared = _Bucket(cfg.max_rate, cfg.burst, now)
        self._senders: dict[tuple[str, int], _Sender] = {}
        self._overflow = _Sender(cfg, now)
        self._hosts: dict[str, _Host] = {}
        self._overflow_host = _Host(cfg, now)
        self._controls = _Bucket(cfg.control_total_rate, cfg.control_total_burst, now)
        self._panic_ns = int(cfg.panic_interval_ms * 1e6)
        self._last_panic = now - self._panic_ns
        self._last_data: bytes | None = None
        self._last_spans: list[tuple[int, int]] = []
        self._replies = _Bucket(cfg.status_replies_total_per_s, 50.0, now)
        self._policy = _Bucket(cfg.policy_loads_per_s, 2.0, now)
        self._reports = _Bucket(cfg.error_reports_per_s, cfg.error_reports_per_s, now)
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

    def _host(self, ip: str, now: int) -> _Host:
        """The aggregate limits of one source address; when the table is full a newcomer takes the place
        of the least recently seen address idle for 2 s, else shares one."""
        h = self._hosts.get(ip)
        if h is None:
            if len(self._hosts) >= self.config.max_hosts:
                victim = min(self._hosts, key=lambda k: self._hosts[k].seen_ns)
                if now - self._hosts[victim].seen_ns <= SENDER_IDLE_NS:
                    h = self._overflow_host
                    h.seen_ns = now
                    return h
                del self._hosts[victim]
            h = self._hosts[ip] = _Host(self.config, now)
        h.seen_ns = now
        return h

    def _sender(self, sender: tuple[str, int], host: _Host, now: int) -> _Sender:
        """This sender's limits. A newcomer (at most ``new_senders_per_s`` per address) gets a place of its
        own, if need be the place of a noisy sender (see :meth:`_victim`), else shares the overflow one."""
        st = self._senders.get(sender)
        if st is None:
            host.newcomers.refill(now)
            if host.newcomers.tokens < 1.0:
                st = self._overflow
            elif len(self._senders) < self.config.max_senders or self._evict(now):
                host.newcomers.tokens -= 1.0
                st = self._senders[sender] = _Sender(self.config, now)
                st.quiet.tokens = min(st.quiet.tokens, NEW_SENDER_QUIET)
            else:
                st = self._overflow
        st.seen_ns = now
        return st

    def _evict(self, now: int) -> bool:
        """Free one place for a newcomer: the least recently seen noisy sender; else the least recently
        seen one idle for 2 s that never sent a note; else one idle for 60 s. Never a quiet sender that is
        playing: busy flooders used to keep their places while a performer resting 2 s lost its own.
        O(max_senders), run at most ``new_senders_per_s`` times a second per address."""
        best: tuple[int, int] | None = None
        victim: tuple[str, int] | None = None
        for key, st in self._senders.items():
            idle = now - st.seen_ns
            if now - st.noisy_ns < NOISY_MEMORY_NS:
                rank = 0
            elif idle > SENDER_IDLE_NS and not st.notes:
                rank = 1
            elif idle > PERFORMER_IDLE_NS:
                rank = 2
            else:
                continue
            if best is None or (rank, st.seen_ns) < best:
                best, victim = (rank, st.seen_ns), key
        if victim is None:
            return False
        del self._senders[victim]
        self.counters.senders_evicted += 1
        return True

    def _admit(self, st: _Sender, host: _Host, now: int) -> bool:
        """Rate limit of one message (buckets refilled per datagram): the sender's own bucket, then its
        address's and the shared one, or, when others have emptied those, the sender's quiet-sender
        allowance. Every message a sender sends spends that allowance, admitted or not, so only a sender
        under ``quiet_rate`` has one (a flooding port never: 40 flooding ports used to get 250 messages/s
        each through it); a performer's notes get through a flood from other ports of its address too."""
        quiet = st.quiet.tokens >= 1.0
        st.quiet.tokens = max(0.0, st.quiet.tokens - 1.0)
        if st.quiet.tokens < 1.0:
            st.noisy_ns = now
        if st.msgs.tokens < 1.0:
            st.noisy_ns = now
            return False
        if self._shared.tokens >= 1.0 and host.msgs.tokens >= 1.0:
            self._shared.tokens -= 1.0
            host.msgs.tokens -= 1.0
        elif not quiet:
            return False
        st.msgs.tokens -= 1.0
        return True

    def _control(self, st: _Sender, host: _Host, kind: Control, sender: tuple[str, int], t_ns: int) -> bool:
        """The control limits (True: pass it on). ``/start``, ``/stop``, ``/continue``: the address's
        transport budget only; ``/panic``: one per ``panic_interval_ms``, the rest collapsed into it;
        other controls: the sender's, its address's and the total control buckets, all three."""
        c = self.counters
        if kind == Control.PANIC:
            if t_ns - self._last_panic < self._panic_ns:
                c.panic_collapsed += 1
                st.noisy_ns = t_ns
                return False
            self._last_panic = t_ns
            return True
        if kind in _TRANSPORT:
            if host.transport.take(t_ns):
                return True
            what = f"/start, /stop, /continue above {self.config.transport_rate:g}/s from {sender[0]}"
        else:
            for b in (st.controls, host.controls, self._controls):
                b.refill(t_ns)
            if st.controls.tokens >= 1.0 and host.controls.tokens >= 1.0 and self._controls.tokens >= 1.0:
                st.controls.tokens -= 1.0
                host.controls.tokens -= 1.0
                self._controls.tokens -= 1.0
                return True
            what = f"controls above {self.config.control_rate:g}/s from {sender[0]} (or in total)"
        st.noisy_ns = t_ns
        c.control_limited += 1
        c.flood_dropped += 1
        self._reject("control_rate", f"{what}: dropped", sender, t_ns)
        return False

    def handle_datagram(self, data: bytes, sender: tuple[str, int], t_ns: int) -> None:
        """Validate one datagram and submit its event(s). Runs on the server thread (tests call it too)."""
        c = self.counters
        c.datagrams += 1
        if not self._allowed(sender[0]):
            c.denied += 1
            self._reject("denied", f"sender {sender[0]} is not in the allow-list", None, t_ns)
            return
        try:
            spans = self._spans(data)
        except DatagramError as e:
            self._undecodable(e, len(data), sender, t_ns)
            return
        host = self._host(sender[0], t_ns)
        st = self._sender(sender, host, t_ns)
        st.msgs.refill(t_ns)
        st.quiet.refill(t_ns)
        host.msgs.refill(t_ns)
        self._shared.refill(t_ns)
        c.messages += len(spans)
        dropped = 0
        for i, (start, end) in enumerate(spans):
            if not self._reserved(data, start, end) and not self._admit(st, host, t_ns):
                # This message and the rest of the datagram (reserved addresses included): no bucket
                # refills within a datagram. Checking a flood's 60-message bundles one message at a time
                # cost ~75 us a datagram: the input thread fell behind, the kernel dropped the socket's
                # overflow, and a performer's notes with it.
                dropped = len(spans) - i
                st.quiet.tokens = max(0.0, st.quiet.tokens - (dropped - 1))
                break
            try:
                address, params = parse_message(data, start, end)
                event = decode(address, params, t_ns, sender)
            except DatagramError as e:
                self._undecodable(e, end - start, sender, t_ns)
                continue
            except MessageError as e:
                self._reject(e.kind, str(e), sender, t_ns)
                continue
            if type(event) is ControlEvent:
                if event.kind == Control.STATUS:
                    self._status(st, sender, event, t_ns)
                    continue
                if not self._control(st, host, event.kind, sender, t_ns):
                    continue
                if event.kind == Control.POLICY and not self._policy.take(t_ns):
                    c.policy_limited += 1
                    c.flood_dropped += 1
                    self._reject(
                        "policy_rate",
                        f"/liveagent/policy above {self.config.policy_loads_per_s:g} loads/s: refused",
                        sender,
                        t_ns,
                    )
                    continue
            elif type(event) is NoteEvent:
                st.notes = True
            c.accepted += 1
            self.submit(event)
        if dropped:  # one count and at most one report per datagram, however many messages it held
            c.flood_dropped += dropped
            self._reject(
                "flood",
                f"input above {self.config.max_rate:g} msg/s: {dropped} dropped",
                sender,
                t_ns,
                dropped,
            )

    def _spans(self, data: bytes) -> list[tuple[int, int]]:
        """:func:`message_spans` of ``data``, remembered for the last datagram: a flood repeats the same
        bytes, and comparing them costs far less than walking a bundle again."""
        if data == self._last_data:
            return self._last_spans
        spans = message_spans(data)
        self._last_data, self._last_spans = data, spans
        return spans

    @staticmethod
    def _reserved(data: bytes, start: int, end: int) -> bool:
        """Whether the message at ``start`` is addressed to one of :data:`_RESERVED` (they have budgets of
        their own and skip the message rate limit); a look at its address only, no parse."""
        nul = data.find(b"\0", start, min(end, start + 24))
        return nul > start and data[start:nul] in _RESERVED

    def _undecodable(self, e: DatagramError, size: int, sender: tuple[str, int], t_ns: int) -> None:
        c = self.counters
        c.undecodable += 1
        c.by_reason[e.reason] = c.by_reason.get(e.reason, 0) + 1
        self._reject("undecodable", f"undecodable OSC ({size} bytes): {e}", sender, t_ns)

    def _status(self, st: _Sender, sender: tuple[str, int], event: ControlEvent, t_ns: int) -> None:
        """A status request: answered within the reply limits (per sender and in total), else only
        counted, so a spoofed or looping client cannot turn 20-byte requests into a stream of replies."""
        c = self.counters
        c.accepted += 1
        if not (st.replies.take(t_ns) and self._replies.take(t_ns)):
            c.status_limited += 1
            st.noisy_ns = t_ns
            return
        if self.status_handler is not None:
            self.status_handler(sender)
        else:
            self.submit(event)

    def _reject(self, kind: str, message: str, sender: tuple[str, int] | None, t_ns: int, n: int = 1) -> None:
        """Count ``n`` rejected messages of ``kind`` (rate-limit drops and denied senders are not
        ``errors``); report them to the engine if the report rate allows."""
        c = self.counters
        if kind not in _NOT_ERRORS:
            c.errors += n
        c.by_kind[kind] = c.by_kind.get(kind, 0) + n
        if self._reports.take(t_ns):
            c.reported += 1
            if c.suppressed:
                message = f"{message} (+{c.suppressed} more suppressed)"
                c.suppressed = 0
            self.submit(InputError(t_ns, "osc", message, sender))
        else:
            c.suppressed += n
