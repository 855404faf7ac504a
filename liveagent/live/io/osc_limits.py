"""The OSC input's rate limits and the accounting of what it refuses.

Kept apart from the server (:mod:`~liveagent.live.io.osc`) because the limits are a policy of their own,
tuned against floods (``docs/OSC.md``), while the server is the socket, the parse and the dispatch: every
bucket, every table of senders and addresses, the rules for giving a place to a newcomer, and the counting
and rate-limited reporting of rejected messages live here. Everything runs on the OSC input thread only, so
nothing here locks; a reader of :class:`OscCounters` sees a consistent-enough snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from liveagent.live.events import Control, InputError, InputEvent

__all__ = [
    "NEW_SENDER_QUIET",
    "NOISY_MEMORY_NS",
    "PERFORMER_IDLE_NS",
    "QUIET_CONTROL_RATE",
    "QUIET_CONTROL_TOTAL_BURST",
    "QUIET_CONTROL_TOTAL_RATE",
    "SENDER_IDLE_NS",
    "Host",
    "LimitSettings",
    "OscCounters",
    "OscLimits",
    "Sender",
]


class LimitSettings(Protocol):
    """The limits of ``OscServerConfig`` (documented there), read here without importing the server."""

    max_rate: float
    burst: float
    error_reports_per_s: float
    quiet_rate: float
    quiet_burst: float
    max_senders: int
    new_senders_per_s: float
    max_hosts: int
    status_replies_per_s: float
    status_replies_total_per_s: float
    control_rate: float
    control_burst: float
    control_total_rate: float
    control_total_burst: float
    transport_rate: float
    panic_interval_ms: float
    policy_loads_per_s: float


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


class Sender:
    """The limits of one sender (address + port): its messages, its quiet-sender priority, its replies,
    and what eviction needs to know (when it was last seen, last over a limit, whether it sent notes)."""

    __slots__ = ("controls", "msgs", "noisy_ns", "notes", "quiet", "quiet_controls", "replies", "seen_ns")

    def __init__(self, cfg: LimitSettings, now_ns: int) -> None:
        self.msgs = _Bucket(cfg.max_rate, cfg.burst, now_ns)
        self.controls = _Bucket(cfg.control_rate, cfg.control_burst, now_ns)
        self.quiet = _Bucket(cfg.quiet_rate, cfg.quiet_burst, now_ns)
        self.quiet_controls = _Bucket(QUIET_CONTROL_RATE, QUIET_CONTROL_RATE, now_ns)
        self.replies = _Bucket(cfg.status_replies_per_s, 20.0, now_ns)
        self.seen_ns = now_ns
        self.noisy_ns = -NOISY_MEMORY_NS
        """When a message of this sender last went over a limit (or its quiet allowance ran out)."""
        self.notes = False
        """It sent a note: a performer, whose place an idle newcomer-sweep must not take."""


class Host:
    """The limits of one source address (all its ports together): messages past the senders' own buckets,
    controls, the transport budget, and how fast it may open new sender places."""

    __slots__ = ("controls", "msgs", "newcomers", "seen_ns", "transport")

    def __init__(self, cfg: LimitSettings, now_ns: int) -> None:
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
QUIET_CONTROL_RATE = 4.0
"""Controls per second (and at once) a quiet sender gets past the address's and the total control
buckets: a performer's ``/mood`` once in a while passes while another port of the same machine floods
controls (a review lost 6 of 12 such controls to a patch looping ``/temperature`` on 127.0.0.1). Every
control a sender sends spends it, admitted or not, so a flooding port gets at most this rate through."""
QUIET_CONTROL_TOTAL_RATE = 20.0
QUIET_CONTROL_TOTAL_BURST = 8.0
"""All quiet senders' allowances together (per second, at once): many ports each at the quiet rate (40
ports of one address) get no more than this past the control limits."""
_TRANSPORT = frozenset({Control.START, Control.STOP, Control.CONTINUE, Control.MUTE})
_RESERVED = frozenset(
    a.encode()
    for a in (
        "/liveagent/start",
        "/liveagent/stop",
        "/liveagent/continue",
        "/liveagent/mute",
        "/liveagent/panic",
        "/liveagent/status",
    )
)
"""Addresses (as they start a message) with budgets of their own, past the message rate limit: a flood
of notes or other controls cannot keep ``/stop``, ``/mute``, ``/panic`` or a status request out."""


class OscLimits:
    """Every rate limit of the OSC input and the counting of what is refused, for one server.

    ``report`` receives the :class:`InputError` reports (at most ``error_reports_per_s``; the rest are
    counted as suppressed): the server's ``submit``, the engine's queue.
    """

    def __init__(
        self, cfg: LimitSettings, counters: OscCounters, report: Callable[[InputEvent], None], now: int
    ) -> None:
        self.config = cfg
        self.counters = counters
        self.report = report
        self.shared = _Bucket(cfg.max_rate, cfg.burst, now)
        self.senders: dict[tuple[str, int], Sender] = {}
        """The sender table (address + port -> limits); never rebound, so a reader may keep it."""
        self._overflow = Sender(cfg, now)
        self._hosts: dict[str, Host] = {}
        self._overflow_host = Host(cfg, now)
        self._controls = _Bucket(cfg.control_total_rate, cfg.control_total_burst, now)
        self._quiet_controls = _Bucket(QUIET_CONTROL_TOTAL_RATE, QUIET_CONTROL_TOTAL_BURST, now)
        self._panic_ns = int(cfg.panic_interval_ms * 1e6)
        self._last_panic = now - self._panic_ns
        self._replies = _Bucket(cfg.status_replies_total_per_s, 50.0, now)
        self._policy = _Bucket(cfg.policy_loads_per_s, 2.0, now)
        self._reports = _Bucket(cfg.error_reports_per_s, cfg.error_reports_per_s, now)

    def host(self, ip: str, now: int) -> Host:
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
            h = self._hosts[ip] = Host(self.config, now)
        h.seen_ns = now
        return h

    def sender(self, sender: tuple[str, int], host: Host, now: int) -> Sender:
        """This sender's limits. A newcomer (at most ``new_senders_per_s`` per address) gets a place of its
        own, if need be the place of a noisy sender (see :meth:`_victim`), else shares the overflow one."""
        st = self.senders.get(sender)
        if st is None:
            host.newcomers.refill(now)
            if host.newcomers.tokens < 1.0:
                st = self._overflow
            elif len(self.senders) < self.config.max_senders or self._evict(now):
                host.newcomers.tokens -= 1.0
                st = self.senders[sender] = Sender(self.config, now)
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
        for key, st in self.senders.items():
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
        del self.senders[victim]
        self.counters.senders_evicted += 1
        return True

    def admit(self, st: Sender, host: Host, now: int) -> bool:
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
        if self.shared.tokens >= 1.0 and host.msgs.tokens >= 1.0:
            self.shared.tokens -= 1.0
            host.msgs.tokens -= 1.0
        elif not quiet:
            return False
        st.msgs.tokens -= 1.0
        return True

    def refill(self, st: Sender, host: Host, now: int) -> None:
        """Refill the buckets :meth:`admit` reads, once per datagram (never within one)."""
        st.msgs.refill(now)
        st.quiet.refill(now)
        host.msgs.refill(now)
        self.shared.refill(now)

    def flooded(self, st: Sender, dropped: int, sender: tuple[str, int], t_ns: int) -> None:
        """``dropped`` messages at the end of a datagram refused by :meth:`admit` (the first of them
        already spent its quiet allowance there): one count and at most one report, however many."""
        st.quiet.tokens = max(0.0, st.quiet.tokens - (dropped - 1))
        self.counters.flood_dropped += dropped
        self.reject(
            "flood",
            f"input above {self.config.max_rate:g} msg/s: {dropped} dropped",
            sender,
            t_ns,
            dropped,
        )

    def policy_load(self, sender: tuple[str, int], t_ns: int) -> bool:
        """Whether a ``/liveagent/policy`` request may go to the engine (the load rate limit)."""
        if self._policy.take(t_ns):
            return True
        c = self.counters
        c.policy_limited += 1
        c.flood_dropped += 1
        self.reject(
            "policy_rate",
            f"/liveagent/policy above {self.config.policy_loads_per_s:g} loads/s: refused",
            sender,
            t_ns,
        )
        return False

    def status_reply(self, st: Sender, t_ns: int) -> bool:
        """Whether a status request may be answered (per sender and in total), else it is only counted,
        so a spoofed or looping client cannot turn 20-byte requests into a stream of replies."""
        if st.replies.take(t_ns) and self._replies.take(t_ns):
            return True
        self.counters.status_limited += 1
        st.noisy_ns = t_ns
        return False

    def control(self, st: Sender, host: Host, kind: Control, sender: tuple[str, int], t_ns: int) -> bool:
        """The control limits (True: pass it on). ``/start``, ``/stop``, ``/continue``, ``/mute``: the
        address's transport budget only; ``/panic``: one per ``panic_interval_ms``, the rest collapsed into
        it; other controls: the sender's, its address's and the total control buckets, all three, or, when
        others emptied the last two, the sender's quiet allowance (:data:`QUIET_CONTROL_RATE`)."""
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
            for b in (st.controls, host.controls, self._controls, st.quiet_controls):
                b.refill(t_ns)
            quiet = st.quiet_controls.tokens >= 1.0
            st.quiet_controls.tokens = max(0.0, st.quiet_controls.tokens - 1.0)
            if st.controls.tokens >= 1.0 and host.controls.tokens >= 1.0 and self._controls.tokens >= 1.0:
                st.controls.tokens -= 1.0
                host.controls.tokens -= 1.0
                self._controls.tokens -= 1.0
                return True
            if quiet and st.controls.tokens >= 1.0 and self._quiet_controls.take(t_ns):
                st.controls.tokens -= 1.0
                return True
            what = f"controls above {self.config.control_rate:g}/s from {sender[0]} (or in total)"
        st.noisy_ns = t_ns
        c.control_limited += 1
        c.flood_dropped += 1
        self.reject("control_rate", f"{what}: dropped", sender, t_ns)
        return False

    @staticmethod
    def reserved(data: bytes, start: int, end: int) -> bool:
        """Whether the message at ``start`` is addressed to one of :data:`_RESERVED` (they have budgets of
        their own and skip the message rate limit); a look at its address only, no parse."""
        nul = data.find(b"\0", start, min(end, start + 24))
        return nul > start and data[start:nul] in _RESERVED

    def reject(self, kind: str, message: str, sender: tuple[str, int] | None, t_ns: int, n: int = 1) -> None:
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
            self.report(InputError(t_ns, "osc", message, sender))
        else:
            c.suppressed += n
