"""MIDI thru: the performer's notes forwarded to our output as they arrive, and the loop that stops it.

Its own module because thru is a job apart from decoding the input: a thread of its own, a queue, the
loop detection and the status figures, none of which the input needs to know. The input thread
(:class:`~liveagent.live.io.midi.MidiIO`) calls :meth:`MidiThru.came_back` for a note on our channel and
:meth:`MidiThru.forward` for a performer note; both only look at a few lists and put a tuple on a queue.

Thru has a thread of its own ("midi-thru", fed by a ``SimpleQueue``), not the input path. When input was
a callback in JACK's real-time process thread, sending thru there also took the output lock, shared with
the normal-priority clock-out thread: a clock-out thread switched out while holding it kept JACK's process
thread waiting until the scheduler ran it again, a priority inversion that stalls the whole JACK graph.
The input path now only puts a tuple on the queue. The cost is the thread's wake-up, small against the
JACK period every message waits for anyway: ``benchmarks/midi_thru_latency.py`` (a real JACK server and
peers, two loaded cores) measured the hand-off, callback entry to send done, at p50 ~200 us against ~100 us
on the callback (before the input was polled), and end to end (keyboard to
synth) no difference beyond noise at JACK periods of 1.3 and 10.7 ms (p50 2.1 / 16.4 ms, p99 2.8 / 21.6 ms
either way). ``MidiThru.latency_ns`` keeps the hand-off times (status ``midi_thru_p50_us``).

The input thread remembers the last message thru sent for each pitch: that message coming back on our channel
within ``thru_loop_ms`` (a performer cannot repeat a key that fast without a note-off between) is a MIDI
loop, as is a thru rate above ``thru_max_rate`` (a loop that transposes or re-channels). A loop stops thru
for good: counted ``thru_loops``, reported in the status (``midi_thru`` 0), one warning logged by the thru
thread (logging may block: never on the input path). Without it one key press fed back 788 messages in 2 s.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from typing import Protocol

from liveagent.live.io.midi_sink import MidiSink

__all__ = ["MidiThru", "ThruCounters"]

log = logging.getLogger(__name__)


class ThruCounters(Protocol):
    """The thru counters of ``MidiCounters`` (written by the input thread only)."""

    thru: int
    """Messages forwarded."""
    thru_echoes: int
    """Performer notes that were thru coming back."""
    thru_loops: int
    """Loops broken."""


class MidiThru:
    """Thru for one :class:`~liveagent.live.io.midi.MidiIO`: ``came_back`` and ``forward`` run on its input
    thread, the sends on the "midi-thru" thread (:meth:`start`); ``down`` is the input's table of the
    performer's keys (per ``channel << 7 | pitch``), read to never take a key's release for an echo."""

    def __init__(
        self,
        active: bool,
        loop_ms: float,
        max_rate: float,
        rt_priority: int,
        counters: ThruCounters,
        down: bytearray,
    ) -> None:
        self.active = active
        """Thru forwards (False once a loop was found)."""
        self.counters = counters
        self._down = down
        self._max_rate = max_rate
        self._rt_priority = rt_priority
        # the input thread's: the last message thru sent per pitch (velocity, 0 = off; -1 = none) and
        # when, and the messages sent in the current one-second window
        self._vel = [-1] * 128
        self._ns = [0] * 128
        self._loop_ns = int(loop_ms * 1e6)
        self._window_ns = 0
        self._window_n = 0
        self._queue: queue.SimpleQueue[tuple[int, int, int] | str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._sink: MidiSink | None = None
        self._in_name = self._out_name = ""
        self.realtime = False
        """The thru thread runs at SCHED_FIFO ``thru_rt_priority``."""
        self.latency_ns: deque[int] = deque(maxlen=4096)
        """Callback entry to send done, per message (the thru thread's hand-off, measured)."""

    def start(self, sink: MidiSink, in_name: str, out_name: str) -> None:
        """Start the thru thread sending on ``sink`` (the port names are for the loop warning)."""
        self._sink, self._in_name, self._out_name = sink, in_name, out_name
        self._thread = threading.Thread(target=self._main, name="midi-thru", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop forwarding and end the thru thread (before the sink it sends on is closed)."""
        thread = self._thread
        if thread is not None:
            self.active = False
            self._queue.put(None)
            thread.join(timeout=1.0)
            self._thread = None
        self._sink = None

    # -- the input thread
    def came_back(self, pitch: int, vel: int, key: int, t_ns: int) -> bool:
        """Whether a note on our out channel is thru's own last message for its pitch coming back (a MIDI
        loop): then it is dropped (the engine heard the original) and thru stops. A performer cannot send
        the same message for a key twice within ``thru_loop_ms`` without another between; a note-off that
        would release a key the performer holds is never taken for an echo. Only on our channel, where thru
        sends: a keyboard that layers the same note on two channels is not a loop (a loop that changes
        the channel is caught by the rate, ``thru_max_rate``)."""
        sent = self._ns[pitch]
        if not sent or vel != self._vel[pitch] or t_ns - sent >= self._loop_ns:
            return False
        if vel == 0 and self._down[key]:
            return False
        ago_ms = (t_ns - sent) / 1e6
        self._ns[pitch] = 0  # one echo per message sent
        self.counters.thru_echoes += 1
        if self.active:
            self._break(f"note {pitch} came back to the input {ago_ms:.0f} ms after thru sent it")
        return True

    def forward(self, pitch: int, vel: int, t_ns: int, t_in: int) -> None:
        """Hand a performer note to the thru thread (after the rate guard)."""
        if t_ns - self._window_ns >= 1_000_000_000:
            self._window_ns = t_ns
            self._window_n = 0
        self._window_n += 1
        if self._window_n > self._max_rate:
            self._break(f"more than {self._max_rate:g} messages within a second")
            return
        self._vel[pitch] = vel
        self._ns[pitch] = t_ns
        self.counters.thru += 1
        self._queue.put((pitch, vel, t_in or time.perf_counter_ns()))

    def _break(self, why: str) -> None:
        """A MIDI loop: thru stops for good (counted ``thru_loops``); the thru thread logs the one warning
        (logging may block: never on the input callback)."""
        self.active = False
        self.counters.thru_loops += 1
        self._queue.put(
            f"MIDI thru stopped: a MIDI loop ({why}): our output {self._out_name} reaches our input "
            f"{self._in_name}; fix the connections and restart to use thru again"
        )

    # -- the thru thread
    def _main(self) -> None:
        """The thru thread: sends what the input thread handed over, logs a loop once, ends on None."""
        prio = self._rt_priority
        if prio > 0 and hasattr(os, "sched_setscheduler"):
            try:  # pid 0: this thread
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
                self.realtime = True
            except OSError as e:
                log.info("MIDI thru thread at normal priority (real-time scheduling unavailable: %s)", e)
        q = self._queue
        lat = self.latency_ns
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, str):
                log.warning("%s", item)
                continue
            pitch, vel, t_in = item
            sink = self._sink
            if sink is not None:
                sink.thru(pitch, vel)
                lat.append(time.perf_counter_ns() - t_in)

    def status(self) -> dict[str, object]:
        """Thru's counters and hand-off latency (p50/max in us over the last messages), for the status."""
        c = self.counters
        out: dict[str, object] = {
            "midi_thru": int(self.active),
            "midi_thru_rt": int(self.realtime),
            "midi_thru_sent": c.thru,
            "midi_thru_echoes": c.thru_echoes,
            "thru_loops": c.thru_loops,
        }
        lat = sorted(self.latency_ns)
        if lat:
            out["midi_thru_p50_us"] = round(lat[len(lat) // 2] / 1e3, 1)
            out["midi_thru_max_us"] = round(lat[-1] / 1e3, 1)
        return out
