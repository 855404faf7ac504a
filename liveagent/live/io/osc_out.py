"""OSC out: :class:`OscSink`, the :class:`~liveagent.live.events.OutputSink` over UDP. Notes and beats are
the hot path (prebuilt headers: one ``struct.pack`` and one ``sendto``); status replies are encoded within a
size cap and cached; the output host is resolved once (:func:`resolve_udp`).

A band (``OscSinkConfig.band``, the voices top-down) sends each voice's notes to
``/liveagent/out/VOICE/note i:pitch i:velocity`` and the lowest voice's also to ``/liveagent/out/note``, so a
v1 client hears the bass line. Each voice's sounding notes are tracked, so ``all_notes_off`` and ``close``
release exactly what every voice started (plus the v1 burst of 128 note-offs), not 128 per voice: 512
datagrams at once can overflow a receiver's default socket buffer (~200 KB on Linux, ~0.8 KB per small
datagram) and the note-offs that mattered would be the ones dropped.
"""

from __future__ import annotations

import logging
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from liveagent.live.io.osc_wire import (
    _F32,
    _I32,
    DEFAULT_OUT_PORT,
    MAX_REPLY_BYTES,
    MAX_REPLY_STRING,
    OUT_BEAT,
    OUT_ERROR,
    OUT_NOTE,
    OUT_STATUS,
    build_message,
    osc_header,
    osc_string,
)

log = logging.getLogger(__name__)


_II = struct.Struct(">ii")
_VOICE_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_D64 = struct.Struct(">d")
_Q64 = struct.Struct(">q")
STATUS_REPLY_MAX_AGE_NS = 20_000_000
"""A status reply answered from the OSC input thread is re-encoded at most this often (the engine's
snapshot it carries is itself published every 100 ms, and ~20 ms after a control message)."""


def resolve_udp(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """``host`` resolved once, IPv4 preferred: (address family, (address, port)).

    Called where the sink is built, before ``serve`` says ``ready``: ``getaddrinfo`` blocks (a DNS lookup
    can take seconds), so it must never run per datagram on the engine thread, and a name that does not
    resolve is a start-up error naming the host, not a show with every note silently dropped.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as e:
        raise ValueError(f"cannot resolve the OSC output host {host!r}: {e}") from None
    if not infos:
        raise ValueError(f"cannot resolve the OSC output host {host!r}: no address")
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, addr = infos[0]
    return family, (str(addr[0]), int(addr[1]))


def band_note_address(voice: str) -> str:
    """The OSC address of band voice ``voice``'s notes: ``/liveagent/out/VOICE/note``."""
    return f"/liveagent/out/{voice}/note"


def _status_arg(v: object) -> tuple[str, bytes]:
    """(type tag, bytes) of one status value; strings cut to :data:`MAX_REPLY_STRING` characters."""
    if isinstance(v, bool):
        return "i", _I32.pack(int(v))
    if isinstance(v, int):
        return (
            ("i", _I32.pack(v))
            if -(2**31) <= v < 2**31
            else ("h", _Q64.pack(max(-(2**63), min(v, 2**63 - 1))))
        )
    if isinstance(v, float):
        try:
            return "f", _F32.pack(v)
        except OverflowError:
            return "d", _D64.pack(v)
    if v is None:
        return "s", osc_string("")
    if isinstance(v, list | tuple):
        v = " ".join(str(x) for x in v)
    return "s", osc_string(str(v)[:MAX_REPLY_STRING])


def encode_status(fields: dict[str, object], limit: int = MAX_REPLY_BYTES) -> bytes:
    """``/liveagent/status key value ...`` of at most ``limit`` bytes (whole pairs; dict values skipped).

    Bounded so that a status request, 20 bytes, buys at most ``limit`` bytes of reply (the limit on the
    reply rate does the rest); encoded by hand because python-osc's builder costs several times more on
    the OSC input thread that answers.
    """
    head = osc_string(OUT_STATUS)
    tags = [","]
    body: list[bytes] = []
    body_len = 0
    for k, v in fields.items():
        if isinstance(v, dict):
            continue
        kb = osc_string(str(k)[:MAX_REPLY_STRING])
        tag, vb = _status_arg(v)
        tags_len = (len(tags) + 2) // 4 * 4 + 4  # the tag string with its NUL, padded
        if len(head) + tags_len + body_len + len(kb) + len(vb) > limit:
            break
        tags += ["s", tag]
        body += [kb, vb]
        body_len += len(kb) + len(vb)
    return head + osc_string("".join(tags)) + b"".join(body)


@dataclass
class OscSinkConfig:
    """Where the OSC output goes."""

    out: tuple[str, int] = ("127.0.0.1", DEFAULT_OUT_PORT)
    """Notes, beats, status and errors go here (a host name is resolved once, when the sink is built)."""
    reply: str = "both"
    """Where replies (status, errors) to a client go: "sender", "out", or "both"."""
    beats: bool = True
    """Send ``/liveagent/out/beat`` on every beat."""
    noteoff_twice: bool = False
    """UDP safety net: send every note-off twice, back to back (before any note-on that follows it). One lost
    datagram on a stage network otherwise leaves a synth note hanging; a receiver ignores a note-off for a
    silent note. Back to back, never later: a repeat that arrived after the next note-on would cut it on a
    mono synth that releases its voice on any note-off (a musician's review measured 33 of 34 legato notes
    cut 4-5 ms after their start when the repeat came 5 ms later)."""
    band: tuple[str, ...] = ()
    """The band's voice names, top-down (e.g. ``("alto", "tenor", "bass")``): voice ``i`` of
    ``band_note_on`` goes to ``/liveagent/out/band[i]/note``, the last (lowest) also to
    ``/liveagent/out/note``. Empty = no band (the solo sink of v1)."""

    def __post_init__(self) -> None:
        self.band = tuple(self.band)
        bad = [v for v in self.band if not _VOICE_NAME.fullmatch(v)]
        if bad:
            raise ValueError(f"band voice names are 1-32 of A-Z a-z 0-9 _ - (an OSC address part), got {bad}")
        if len(set(self.band)) != len(self.band):
            raise ValueError(f"band voice names must differ, got {self.band}")


class OscSink:
    """OutputSink over OSC/UDP. Notes and beats use prebuilt headers: one pack and one sendto each.

    ``sock`` may be shared with an :class:`OscServer` so replies come from the server's port; by default the
    sink owns a socket of its own. The output host is resolved once, here (see :func:`resolve_udp`). Send
    errors (nobody listening, no route, buffer full) are counted (``send_errors``), never raised: the engine
    must keep time whatever the network does.
    """

    def __init__(self, config: OscSinkConfig | None = None, sock: socket.socket | None = None) -> None:
        self.config = config or OscSinkConfig()
        family, self.out = resolve_udp(*self.config.out)
        self._own = sock is None
        self.sock = sock or socket.socket(family, socket.SOCK_DGRAM)
        self._note_hdr = osc_header(OUT_NOTE, "ii")
        self._beat_hdr = osc_header(OUT_BEAT, "ii")
        self._note_off = [self._note_hdr + _II.pack(p, 0) for p in range(128)]
        self.send_errors = 0
        self.sent = 0
        self.noteoff_repeats = 0
        """Note-offs sent a second time by the safety net."""
        self._twice = self.config.noteoff_twice
        self._status_cache: tuple[int, bytes] | None = None
        band = self.config.band
        self._band_hdr = [osc_header(band_note_address(v), "ii") for v in band]
        self._band_off = [[h + _II.pack(p, 0) for p in range(128)] for h in self._band_hdr]
        self._lowest = len(band) - 1
        """The voice mirrored on ``/liveagent/out/note`` (-1: no band)."""
        self.band_sounding = [bytearray(128) for _ in band]
        """Per voice, the pitches it sounds (1) at the receiver as far as we sent: what a flush releases."""

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
        if self._twice:
            self._send(self._note_off[pitch], self.out)
            self.noteoff_repeats += 1

    def band_note_on(self, voice: int, pitch: int, velocity: int) -> None:
        """A band voice's note-on (velocity 0: its note-off) on its address, the lowest voice's on the v1
        address too."""
        if velocity <= 0:
            self.band_note_off(voice, pitch)
            return
        if not 0 <= voice <= self._lowest:  # a negative index would silently pick another voice
            raise IndexError(f"band voice {voice} of {self._lowest + 1}")
        args = _II.pack(pitch, velocity)
        self._send(self._band_hdr[voice] + args, self.out)
        if voice == self._lowest:
            self._send(self._note_hdr + args, self.out)
        self.band_sounding[voice][pitch] = 1

    def band_note_off(self, voice: int, pitch: int) -> None:
        """A band voice's note-off, twice back to back with ``noteoff_twice`` (as ``note_off``)."""
        if not 0 <= voice <= self._lowest:
            raise IndexError(f"band voice {voice} of {self._lowest + 1}")
        off = self._band_off[voice][pitch]
        self._send(off, self.out)
        if self._twice:
            self._send(off, self.out)
            self.noteoff_repeats += 1
        if voice == self._lowest:
            self.note_off(pitch)
        self.band_sounding[voice][pitch] = 0

    def _flush_band(self) -> None:
        """Note-offs for what each band voice sounds (at most 128 per voice; usually one)."""
        for voice, sounding in enumerate(self.band_sounding):
            p = sounding.find(1)
            while p >= 0:
                self.band_note_off(voice, p)
                p = sounding.find(1, p + 1)

    def all_notes_off(self) -> None:
        """The band voices' sounding notes first (the ones that matter, before a burst could fill the
        receiver's buffer), then a note-off for every pitch on ``/liveagent/out/note``."""
        self._flush_band()
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
        """``/liveagent/status key value key value ...`` (flat pairs: easy to route in Pd and Max), at most
        :data:`MAX_REPLY_BYTES`."""
        data = encode_status(fields)
        for d in self._dests(reply_to):
            self._send(data, d)

    def status_cached(self, build: Callable[[], dict[str, object]], reply_to: tuple[str, int] | None) -> None:
        """A status reply from the OSC input thread: ``build()`` (the engine's published snapshot plus
        the I/O counters) is encoded at most once per :data:`STATUS_REPLY_MAX_AGE_NS` and the bytes are
        reused in between, so a client polling in a loop costs the input thread a ``sendto`` per request,
        not an encoding (~0.5 ms for ~100 keys), and performer input behind it is not delayed. One
        thread only (the cache is not locked)."""
        now = time.perf_counter_ns()
        cached = self._status_cache
        if cached is None or now - cached[0] > STATUS_REPLY_MAX_AGE_NS:
            cached = self._status_cache = (now, encode_status(build()))
        for d in self._dests(reply_to):
            self._send(cached[1], d)

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        data = build_message(OUT_ERROR, [message[:500]])
        for d in self._dests(reply_to):
            self._send(data, d)

    def close(self) -> None:
        self._flush_band()  # nothing when the engine's exit already released every voice
        if self._own:
            self.sock.close()
