"""Ableton Link as a clock: tempo, beat phase and start/stop shared with every Link peer on the network.

Link (through the optional, GPL-licensed ``aalink`` package: ``pip install liveagent[link]``) runs its own
threads and wants an asyncio loop. The engine thread never calls into it: a small thread ("liveagent-link")
owns the ``aalink.Link``, samples it every ``sample_ms`` and publishes an immutable :class:`LinkSample`
(a reference swap the engine reads in :meth:`LinkClock.poll`); it also carries out what the engine asks
(start, stop, a tempo) from a queue the engine only puts into. When the session's tempo, transport or peers
change, the thread wakes the engine with a ``ControlEvent(BEAT)`` so the change is followed at once.

The grid: Link's quantum is the bar (``beats_per_bar``), so Link's phase is the beat within our bar; step k
is Link beat ``k / steps_per_beat``. When the session starts playing, the thread maps Link beat 0 to the
session's start time (``request_beat_at_start_playing_time(0)``, as LinkHut does): step 0 is the session's
first downbeat, and a start scheduled in the future (as this clock proposes one, ``preroll_ms`` ahead) is
played from its first step. Times are ``perf_counter_ns``: each sample reads Link's beat between two
``perf_counter_ns`` reads and keeps the midpoint (samples whose read took longer than ``max_read_us`` are
dropped), so Link's own clock (CLOCK_MONOTONIC_RAW) never has to be converted.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from liveagent.live.engine.clocks import Clock, NowFn
from liveagent.live.events import Control, ControlEvent
from liveagent.music.tokens import Grid

log = logging.getLogger(__name__)

LINK_EXTRA_MESSAGE = "--clock link needs the optional extra: pip install liveagent[link]"


class LinkUnavailableError(RuntimeError):
    """``aalink`` is not installed."""


class LinkSample(NamedTuple):
    """Link's session as seen at ``t_ns`` (perf_counter_ns): the beat then, tempo, transport and peers."""

    t_ns: int
    beat: float
    tempo: float
    playing: bool
    peers: int
    phase: float


def import_aalink() -> Any:
    """The ``aalink`` module, imported only when a Link clock is made (the core stays importable without
    it); a clear error naming the extra when it is absent."""
    try:
        import aalink
    except ImportError as e:
        raise LinkUnavailableError(LINK_EXTRA_MESSAGE) from e
    return aalink


class LinkSession:
    """The thread that owns the ``aalink.Link``: samples it, publishes :class:`LinkSample`, runs commands.

    ``latest`` is read from any thread (a reference); ``propose_*`` only put on a queue. ``on_change`` is
    called on this thread when tempo, transport or peers change (the engine's wake-up).
    """

    def __init__(
        self,
        bpm: float,
        quantum: float,
        *,
        sample_ms: float = 2.0,
        preroll_ms: float = 50.0,
        max_read_us: float = 300.0,
        propose_bpm: float | None = None,
        join_s: float = 3.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._aalink = import_aalink()
        self.bpm = float(bpm)
        self.quantum = float(quantum)
        self.sample_s = sample_ms / 1e3
        self.preroll_us = int(preroll_ms * 1e3)
        self.max_read_ns = int(max_read_us * 1e3)
        self.propose_bpm = propose_bpm
        self.join_s = join_s
        self.on_change = on_change
        self.latest: LinkSample | None = None
        self._commands: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="liveagent-link", daemon=True)

    def start(self, timeout: float = 5.0) -> None:
        """Start the thread and wait for Link's first sample (errors of the Link constructor re-raised)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("Ableton Link did not start")
        if self._error is not None:
            raise RuntimeError(f"Ableton Link failed to start: {self._error}") from self._error

    def propose_playing(self, playing: bool) -> None:
        self._commands.put(("play" if playing else "stop", 0.0))

    def propose_tempo(self, bpm: float) -> None:
        self._commands.put(("tempo", float(bpm)))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    # -- the Link thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as e:
            log.exception("Ableton Link thread failed")
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        link = self._aalink.Link(self.propose_bpm or self.bpm)
        link.quantum = self.quantum
        link.start_stop_sync_enabled = True
        link.enabled = True
        playing = False
        proposal, until = self.propose_bpm, time.monotonic() + self.join_s
        try:
            while not self._stop.is_set():
                if proposal is not None and (link.num_peers > 0 or time.monotonic() > until):
                    # Joining a session adopts its tempo: the proposal goes to the session once joined
                    # (or to our own session, when nobody answered within join_s).
                    link.tempo = proposal
                    proposal = None
                self._run_commands(link)
                now_playing = bool(link.playing)
                if now_playing and not playing:
                    link.request_beat_at_start_playing_time(0.0)  # step 0 = the session's first downbeat
                playing = now_playing
                self._sample(link, now_playing)
                self._ready.set()
                await asyncio.sleep(self.sample_s)
        finally:
            link.enabled = False

    def _run_commands(self, link: Any) -> None:
        while True:
            try:
                cmd, value = self._commands.get_nowait()
            except queue.Empty:
                return
            if cmd == "tempo":
                link.tempo = value
            elif cmd == "play" and not link.playing:
                at = link.time + datetime.timedelta(microseconds=self.preroll_us)
                link.set_is_playing_and_request_beat_at_time(True, at, 0.0)
            elif cmd == "stop" and link.playing:
                link.playing = False

    def _sample(self, link: Any, playing: bool) -> None:
        t0 = time.perf_counter_ns()
        beat = float(link.beat)
        t1 = time.perf_counter_ns()
        if t1 - t0 > self.max_read_ns and self.latest is not None:
            return  # preempted between the reads: the time of this beat is unknown
        tempo, peers = float(link.tempo), int(link.num_peers)
        sample = LinkSample((t0 + t1) // 2, beat, tempo, playing, peers, beat % self.quantum)
        old = self.latest
        self.latest = sample
        changed = old is None or old.tempo != tempo or old.playing != playing or old.peers != peers
        if changed and self.on_change is not None:
            self.on_change()


class LinkClock(Clock):
    """Steps on an Ableton Link session's beat grid (see the module docstring).

    The engine thread reads the session's latest sample in :meth:`poll` (and on the wake-up event) and
    keeps a timeline ``beat(t) = anchor_beat + (t - anchor_ns) * tempo / 60 s``; it re-anchors when the
    tempo changed or a sample is more than ``resync_us`` off the timeline (a peer moved the phase, or
    the two system clocks drifted), so the grid does not jitter with the sampling.
    """

    def __init__(
        self,
        session: LinkSession,
        grid: Grid | None = None,
        *,
        now: NowFn = time.perf_counter_ns,
        resync_us: float = 250.0,
        start_margin_ms: float = 1.0,
    ) -> None:
        super().__init__(grid or Grid(), now)
        self.session = session
        self.resync_ns = resync_us * 1e3
        self.start_margin_ns = int(start_margin_ms * 1e6)
        self._tempo = session.bpm
        self._anchor_ns = 0
        self._anchor_beat = 0.0
        self._seen: LinkSample | None = None
        self.resyncs = 0

    @property
    def bpm(self) -> float:
        return self._tempo

    def _beat_ns(self) -> float:
        return 60e9 / self._tempo

    def due(self, k: int) -> int:
        return self._anchor_ns + round((k / self.grid.steps_per_beat - self._anchor_beat) * self._beat_ns())

    def step_at(self, t_ns: int) -> float:
        beat = self._anchor_beat + (t_ns - self._anchor_ns) / self._beat_ns()
        return beat * self.grid.steps_per_beat

    def _follow(self, s: LinkSample) -> None:
        """Fold a new sample into the timeline: re-anchor on a tempo change or a phase error."""
        off_ns = (s.beat - self._anchor_beat) * self._beat_ns() - (s.t_ns - self._anchor_ns)
        if s.tempo != self._tempo or abs(off_ns) > self.resync_ns or self._seen is None:
            self._anchor_ns, self._anchor_beat, self._tempo = s.t_ns, s.beat, s.tempo
            self.resyncs += 1

    def poll(self, now: int) -> None:
        s = self.session.latest
        if s is None or s is self._seen:
            return
        was_playing = self._seen.playing if self._seen is not None else False
        self._follow(s)
        self._seen = s
        if s.playing and not was_playing:
            self.start_step = max(0, math.ceil(self.step_at(now + self.start_margin_ns)))
            self.running = True
            self._bump()
        elif was_playing and not s.playing and self.running:
            self.running = False
            self._bump()

    def handle(self, ev: ControlEvent) -> bool:
        kind = ev.kind
        if kind in (Control.START, Control.CONTINUE):
            self.session.propose_playing(True)
        elif kind == Control.STOP:
            self.session.propose_playing(False)
        elif kind == Control.TEMPO:
            self.session.propose_tempo(ev.value)
        elif kind == Control.BEAT:
            self.poll(self.now())  # the session changed (or an OSC /beat: nothing to re-anchor here)
        else:
            return False
        return True

    def status(self) -> dict[str, object]:
        out = super().status()
        s = self._seen
        out["link_peers"] = s.peers if s is not None else 0
        out["link_tempo"] = round(s.tempo, 3) if s is not None else round(self._tempo, 3)
        out["link_playing"] = s.playing if s is not None else False
        out["link_phase"] = round(s.phase, 3) if s is not None else 0.0
        out["link_resyncs"] = self.resyncs
        return out

    def close(self) -> None:
        self.session.close()


def make_link_clock(
    grid: Grid,
    bpm: float,
    *,
    propose_bpm: float | None = None,
    wake: Callable[[ControlEvent], None] | None = None,
) -> LinkClock:
    """A started Link session and its clock: ``bpm`` is the tempo of a session of our own (joining one
    adopts its tempo), ``propose_bpm`` a tempo proposed to the session once joined; ``wake`` receives the
    engine's wake-up events."""

    def on_change() -> None:
        if wake is not None:
            wake(ControlEvent(time.perf_counter_ns(), Control.BEAT, -1.0))

    session = LinkSession(bpm, float(grid.beats_per_bar), propose_bpm=propose_bpm, on_change=on_change)
    session.start()
    return LinkClock(session, grid)
