"""MIDI in and out through python-rtmidi (JACK or ALSA), with mido only for port discovery.

No Python runs in the backend's thread: RtMidi queues each message (with its delta time, taken on arrival)
and a thread of ours, "midi-in" (SCHED_FIFO ``in_rt_priority``), empties that queue every ``in_poll_ms``
(0.5 ms). A Python callback would run in JACK's real-time process thread and wait there for the GIL,
which any busy thread of this process may hold: the whole JACK graph would wait with it. The
input thread only timestamps, decodes the few bytes, and hands an immutable event to
``submit``: notes of the performer's channels, MIDI clock, Start/Stop/Continue and Song Position Pointer as
:class:`ControlEvent` for the clock, and the performer's All Notes Off / All Sound Off (CC 123 / 120) and
System Reset as :data:`Control.PERFORMER_NOTES_OFF` (they release the keys the engine holds for the
performer; Stop does too, in the engine). Malformed bytes become a rate-limited :class:`InputError`;
everything else (other CCs, aftertouch, active sensing) is ignored and counted.

Our own output is told from the performer by channel: by default the performer is every channel but
``out_channel`` (channel 2, apart from the channel 1 keyboards send on), so our output looped back to our
input is filtered, never a note. When the performer's channels include ours (a choice), a message on our
channel is taken for our echo only when it has the very bytes we sent within ``feedback_ms``, once per
message sent, and a note-off only while the performer holds no such key on that channel: a note-off that
releases a performer's key is never dropped (it was, when both defaults were channel 1, and the key then
stayed down for good). What is left of the risk, an echo of our note-off taken for the performer's, only
releases a key the performer does not hold. A band (``band_channels``, one channel per voice) makes every
voice's channel the agent's too: left out of the performer's channels by default, and echo-checked like
``out_channel`` (what was sent is kept per channel and pitch).

Time stamps come from the backend's timeline (rtmidi's delta times, measured in C when a message
arrives), mapped onto ``perf_counter_ns`` by
:class:`~liveagent.live.io.device_clock.DeviceClockMapper`: under load the input thread runs milliseconds
late, and that delay must not reach the clock follower's tempo or the performer's onsets. rtmidi filters
nothing (``ignore_types`` all off): JACK's RtMidi advances its delta reference on messages it drops, so
a filtered message would lose its interval from the sum.

:class:`~liveagent.live.io.midi_sink.MidiSink` (its own module) is the output: see there.

Why the output port has a lock: rtmidi output ports are not thread-safe (with JACK, ``send_message``
writes a single-producer ring buffer) and three threads may send: the engine (notes), the clock-out thread
(pulses) and, with ``thru``, the thru thread. The lock is held for one ``send_message`` only (a few us),
never while building a message, so the engine waits at most one send.

MIDI thru (its thread, its loop detection) is :class:`~liveagent.live.io.midi_thru.MidiThru`: see there.

What the ports are told and counted (:class:`~liveagent.live.io.midi_config.MidiConfig`, ``MidiCounters``) and
the channel texts of the ready line and the warnings are in :mod:`~liveagent.live.io.midi_config`.

The backend is chosen by ``api`` or mido's ``MIDO_BACKEND`` variable (``mido.backends.rtmidi/UNIX_JACK``);
"auto" tries ALSA then JACK, because machines without ``/dev/snd`` only have JACK.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from liveagent.live.events import Control, ControlEvent, InputError, InputEvent, NoteEvent
from liveagent.live.io.device_clock import DeviceClockMapper
from liveagent.live.io.jack import JACK_SETTLE_S, close_in_turn
from liveagent.live.io.midi_clock_out import CLOCK, CONTINUE, PPQN, SPP, START, STOP, MidiClockOut
from liveagent.live.io.midi_config import MidiConfig, MidiCounters, channels_label, filtered_channel_warning
from liveagent.live.io.midi_sink import CC, NOTE_OFF, NOTE_ON, MidiSink
from liveagent.live.io.midi_thru import MidiThru
from liveagent.live.io.rtmidi_ports import (
    MidiUnavailableError,
    SysexGuard,
    api_from_env,
    close_rtmidi_port,
    find_port,
    list_ports,
    open_rtmidi,
)

__all__ = [
    "CLOCK",
    "CONTINUE",
    "PPQN",
    "SPP",
    "START",
    "STOP",
    "MidiClockOut",
    "MidiConfig",
    "MidiCounters",
    "MidiIO",
    "MidiSink",
    "MidiUnavailableError",
    "SysexGuard",
    "api_from_env",
    "close_rtmidi_port",
    "find_port",
    "list_ports",
    "open_rtmidi",
]

log = logging.getLogger(__name__)

RESET = 0xFF
# data bytes that follow each status (high nibble for channel messages)
PAD_INTERVAL_NS = 10_000_000
"""The style pad's points reach the engine at most this often (100 a second, as OSC ``/style``'s limit)."""
_CHANNEL_LEN = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_SYSTEM_LEN = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0, 0xFF: 0}


class MidiIO:
    """Owns the rtmidi ports; ``sink`` (a :class:`MidiSink`) exists when there is an output port."""

    def __init__(self, submit: Callable[[InputEvent], None], config: MidiConfig | None = None) -> None:
        self.config = cfg = config or MidiConfig()
        self.submit = submit
        self.counters = MidiCounters()
        self.midi_in: Any = None
        self.midi_out: Any = None
        self.in_name = self.out_name = ""
        # What we sent on our channels, for echo suppression (written by the sender, consumed by the
        # callback): per (channel << 7 | pitch) the time (perf_counter_ns; 0 = no echo expected) and velocity
        # of our last note-on, the time of our last note-off; per channel the time of our last All Notes Off.
        self.sent_on_ns = [0] * (16 * 128)
        self.sent_on_vel = [0] * (16 * 128)
        self.sent_off_ns = [0] * (16 * 128)
        self.sent_notes_off_ns = [0] * 16
        self._feedback_ns = int(cfg.feedback_ms * 1e6)
        self.agent_channels = frozenset((cfg.out_channel, *cfg.band_channels))
        """The channels we send notes on (``out_channel`` and the band's): never the performer by default."""
        self._channels = frozenset(cfg.in_channels) if cfg.in_channels else frozenset(range(16))
        if not cfg.in_channels and (cfg.out_port or cfg.virtual):
            self._channels -= self.agent_channels  # our own output looped back is never the performer
        self._down = bytearray(16 * 128)
        self._pad_cc = frozenset(c for c in cfg.style_cc if c)
        self._pad_xy = [0.0, 0.0]
        """The pad's last x and y (callback thread): one CC moves one coordinate, the event carries both."""
        self._pad_sent_ns = -PAD_INTERVAL_NS
        self._pad_pending = False
        """A pad point not yet sent (a CC within ``PAD_INTERVAL_NS`` of the last point sent)."""
        self._filtered_warned = 0
        """Channels :meth:`filtered_warnings` has warned about (bit mask; its caller's thread only)."""
        """The performer's keys down, per (channel << 7 | pitch), as the callback passed them on."""
        self.thru = MidiThru(
            cfg.thru, cfg.thru_loop_ms, cfg.thru_max_rate, cfg.thru_rt_priority, self.counters, self._down
        )
        self._report_tokens = 1.0
        self._report_last = time.perf_counter_ns()
        self.out_lock = threading.Lock()
        self.device_clock = DeviceClockMapper()
        self.sink: MidiSink | None = None
        self.sysex_guard: SysexGuard | None = None
        self._in_thread: threading.Thread | None = None
        self._in_stop = threading.Event()
        self.in_realtime = False
        """The input thread runs at SCHED_FIFO ``in_rt_priority``."""
        try:
            if cfg.in_port or cfg.virtual:
                self.midi_in = open_rtmidi("in", cfg.api, cfg.client_name)
                self.midi_in.ignore_types(sysex=False, timing=False, active_sense=False)  # see the docstring
                if cfg.in_port:
                    idx = find_port(self.midi_in.get_ports(), cfg.in_port)
                    self.in_name = self.midi_in.get_ports()[idx]
                    self.midi_in.open_port(idx, "in")
                else:
                    self.midi_in.open_virtual_port("in")
                    self.in_name = f"{cfg.client_name}:in"
                self._in_thread = threading.Thread(target=self._in_main, name="midi-in", daemon=True)
                self._in_thread.start()
                self._start_sysex_guard()
            if cfg.out_port or cfg.virtual:
                self.midi_out = open_rtmidi("out", cfg.api, cfg.client_name + "-out")
                if cfg.out_port:
                    idx = find_port(self.midi_out.get_ports(), cfg.out_port)
                    self.out_name = self.midi_out.get_ports()[idx]
                    self.midi_out.open_port(idx, "out")
                else:
                    self.midi_out.open_virtual_port("out")
                    self.out_name = f"{cfg.client_name}-out:out"
                self.sink = MidiSink(
                    self.midi_out,
                    cfg.out_channel,
                    self,
                    clock_out=cfg.clock_out,
                    beats_per_bar=cfg.beats_per_bar,
                    band_channels=cfg.band_channels,
                )
                if cfg.thru:
                    self.thru.start(self.sink, self.in_name, self.out_name)
        except BaseException:
            self.close()
            raise

    @property
    def backend(self) -> str:
        import rtmidi

        port = self.midi_in or self.midi_out
        return rtmidi.get_api_name(port.get_current_api()) if port is not None else "none"

    # -- input (the "midi-in" thread)
    def _in_main(self) -> None:
        """Empty RtMidi's input queue every ``in_poll_ms`` (no Python in JACK's process thread)."""
        prio = self.config.in_rt_priority
        if prio > 0 and hasattr(os, "sched_setscheduler"):
            try:  # pid 0: this thread
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
                self.in_realtime = True
            except OSError as e:
                log.info("MIDI input thread at normal priority (real-time scheduling unavailable: %s)", e)
        port, stop, pause = self.midi_in, self._in_stop, self.config.in_poll_ms / 1e3
        while not stop.is_set():
            try:
                got = port.get_message()
            except Exception as e:  # the port is gone (JACK restarted): count, keep the thread quiet
                self.counters.errors += 1
                log.warning("MIDI input stopped: %r", e)
                return
            if got is None:
                if self._pad_pending:
                    self.flush_pad(time.perf_counter_ns())
                time.sleep(pause)
            else:
                self._callback(got)

    def _callback(self, msg_data: tuple[list[int], float], _data: object = None) -> None:
        t_ns = t_in = time.perf_counter_ns()
        msg, delta_s = msg_data
        if self.config.device_time:
            t_ns = self.device_clock.map(delta_s, t_ns)
        self.handle(msg, t_ns, t_in)

    def handle(self, msg: list[int], t_ns: int, t_in: int = 0) -> None:
        """Decode one raw MIDI message and submit its event (tests call this directly); ``t_in`` is when
        the callback got it (``perf_counter_ns``), for the thru hand-off's latency."""
        c = self.counters
        c.messages += 1
        n = len(msg)
        if n and msg[0] == 0xF0:  # SysEx (delivered only for its delta time; ends with 0xF7)
            c.ignored += 1
            return
        if n == 0 or msg[0] < 0x80 or any(not 0 <= b < 0x80 for b in msg[1:]):
            self._error(f"malformed MIDI message {bytes(msg[:8]).hex()}", t_ns)
            return
        status = msg[0]
        if status < 0xF0:
            kind, ch = status & 0xF0, status & 0x0F
            if n != _CHANNEL_LEN[kind] + 1:
                self._error(f"MIDI {kind:#x} with {n - 1} data bytes", t_ns)
                return
            if kind == CC and msg[1] in (120, 123):
                self._notes_off_in(msg, ch, t_ns)
                return
            if kind == CC and msg[1] in self._pad_cc and ch in self._channels:
                self._pad(msg[1], msg[2], t_ns)
                return
            if kind != NOTE_ON and kind != NOTE_OFF:
                c.ignored += 1
                return
            if ch not in self._channels:
                c.filtered += 1
                if kind == NOTE_ON and msg[2]:  # a performer playing where we do not listen: see
                    c.filtered_note_channels |= 1 << ch  # filtered_warnings (never logs here)
                    if ch in self.agent_channels:
                        c.filtered_on_out_channel += 1
                return
            pitch = msg[1]
            vel = msg[2] if kind == NOTE_ON else 0
            key = ch << 7 | pitch
            if ch in self.agent_channels and self.midi_out is not None:
                if self._echo(msg, key, t_ns):
                    c.echo_suppressed += 1
                    return
                if ch == self.config.out_channel and self.thru.came_back(pitch, vel, key, t_ns):
                    return
            self._down[key] = 1 if vel else 0
            c.notes += 1
            self.submit(NoteEvent(t_ns, pitch, vel, "midi"))
            if self.thru.active and self.sink is not None:
                self.thru.forward(pitch, vel, t_ns, t_in)
            return
        if status == 0xF7:
            c.ignored += 1
            return
        want = _SYSTEM_LEN.get(status)
        if want is None or n != want + 1:
            self._error(f"MIDI system message {status:#x} with {n - 1} data bytes", t_ns)
            return
        if status == CLOCK:
            c.clock += 1
            self.submit(ControlEvent(t_ns, Control.CLOCK_TICK))
        elif status == START:
            self.submit(ControlEvent(t_ns, Control.START))
        elif status == STOP:
            self.submit(ControlEvent(t_ns, Control.STOP))
        elif status == CONTINUE:
            self.submit(ControlEvent(t_ns, Control.CONTINUE))
        elif status == SPP:
            self.submit(ControlEvent(t_ns, Control.SONG_POSITION, float(msg[1] | (msg[2] << 7))))
        elif status == RESET:
            c.notes_off_in += 1
            self._down[:] = bytes(len(self._down))
            self.submit(ControlEvent(t_ns, Control.PERFORMER_NOTES_OFF))
        else:
            c.ignored += 1

    def _pad(self, cc: int, value: int, t_ns: int) -> None:
        """A style pad CC: 0..127 -> -1..1 on its axis. The point moves at once; the engine gets it at
        most once per ``PAD_INTERVAL_NS`` (the rest coalesced into the next point sent, counted; the last
        one goes out when the input idles: :meth:`flush_pad`). A controller streaming 10,000 CCs a second
        made as many STYLE events for the engine thread: 3-14 misses in 100 steps at 240 BPM (a review)."""
        self._pad_xy[0 if cc == self.config.style_cc[0] else 1] = value / 63.5 - 1.0
        self.counters.style_cc += 1
        if t_ns - self._pad_sent_ns >= PAD_INTERVAL_NS:
            self._send_pad(t_ns)
        else:
            self._pad_pending = True
            self.counters.style_cc_coalesced += 1

    def _send_pad(self, t_ns: int) -> None:
        self._pad_sent_ns = t_ns
        self._pad_pending = False
        self.submit(ControlEvent(t_ns, Control.STYLE, values=(self._pad_xy[0], self._pad_xy[1])))

    def flush_pad(self, now_ns: int) -> None:
        """Send a coalesced pad point once ``PAD_INTERVAL_NS`` has passed (the input thread, when idle)."""
        if self._pad_pending and now_ns - self._pad_sent_ns >= PAD_INTERVAL_NS:
            self._send_pad(now_ns)

    def _notes_off_in(self, msg: list[int], ch: int, t_ns: int) -> None:
        """All Notes Off / All Sound Off: on a performer channel it releases the performer's keys (the
        engine's :data:`Control.PERFORMER_NOTES_OFF`), unless it is our own All Notes Off coming back."""
        c = self.counters
        if ch not in self._channels:
            c.filtered += 1
            return
        own = ch in self.agent_channels and self.midi_out is not None and msg[1] == 123
        sent = self.sent_notes_off_ns[ch]
        if own and sent and t_ns - sent < self._feedback_ns:
            self.sent_notes_off_ns[ch] = 0
            c.echo_suppressed += 1
            return
        c.notes_off_in += 1
        self._down[ch << 7 : (ch + 1) << 7] = bytes(128)
        self.submit(ControlEvent(t_ns, Control.PERFORMER_NOTES_OFF))

    def _echo(self, msg: list[int], key: int, t_ns: int) -> bool:
        """Whether a note on one of our channels is our own output coming back: the very bytes we sent on
        that channel, within ``feedback_ms``, once per message sent. A note-off only while the performer
        holds no such key on this channel: a note-off that releases a performer's key is never taken for an
        echo (dropping it left the key down for good)."""
        window = self._feedback_ns
        if msg[0] & 0xF0 == NOTE_ON and msg[2]:
            sent = self.sent_on_ns[key]
            if sent and t_ns - sent < window and msg[2] == self.sent_on_vel[key]:
                self.sent_on_ns[key] = 0
                return True
            return False
        sent = self.sent_off_ns[key]
        if (
            sent
            and t_ns - sent < window
            and msg[0] & 0xF0 == NOTE_OFF
            and msg[2] == 0
            and not self._down[key]
        ):
            self.sent_off_ns[key] = 0
            return True
        return False

    @property
    def thru_active(self) -> bool:
        """Thru forwards (False once a loop was found): :attr:`MidiThru.active`."""
        return self.thru.active

    def channels_label(self) -> str:
        """The performer's input channels as musicians count them (1-based): ``all``, ``all-but-2`` or
        ``1,3`` (for the ready line: a keyboard on a filtered channel is otherwise silently unheard)."""
        return channels_label(self._channels)

    def filtered_warnings(self) -> list[str]:
        """Warnings, each once, for channels whose note-ons were filtered since the last call: a keyboard
        the server does not listen to. The callback only sets bits in a counter (logging may block); a
        non-real-time caller (serve's main loop) calls this and logs."""
        seen = self.counters.filtered_note_channels & ~self._filtered_warned
        if not seen:
            return []
        self._filtered_warned |= seen
        has_out, label = self.midi_out is not None, self.channels_label()
        return [
            filtered_channel_warning(ch, self.config, self.agent_channels, has_out, label)
            for ch in range(16)
            if seen >> ch & 1
        ]

    def _error(self, message: str, t_ns: int) -> None:
        c = self.counters
        c.errors += 1
        rate = self.config.error_reports_per_s
        self._report_tokens = min(
            max(1.0, rate), self._report_tokens + max(0, t_ns - self._report_last) * 1e-9 * rate
        )
        self._report_last = t_ns
        if self._report_tokens >= 1.0:
            self._report_tokens -= 1.0
            c.reported += 1
            if c.suppressed:
                message += f" (+{c.suppressed} more suppressed)"
                c.suppressed = 0
            self.submit(InputError(t_ns, "midi", message))
        else:
            c.suppressed += 1

    def _start_sysex_guard(self) -> None:
        """Guard our input against a SysEx that never ends (a warning, never an error, if it cannot)."""
        cfg = self.config
        if cfg.sysex_guard_s <= 0:
            return
        try:
            self.sysex_guard = SysexGuard(
                cfg.api, cfg.client_name + "-guard", f"{cfg.client_name}:in", cfg.sysex_guard_s
            )
        except Exception as e:
            log.warning("MIDI input without its SysEx guard (a truncated SysEx would deafen it): %s", e)

    def close(self) -> None:
        """Stop what uses the ports (input, thru and clock-out threads), release the notes, then close the
        JACK clients one at a time (:func:`~liveagent.live.io.jack.close_in_turn`: back to back, libjack
        crashed at exit). An input thread that outlives its join keeps its port: a leak, never a freed port
        polled."""
        self._in_stop.set()
        in_port = self.midi_in
        if self._in_thread is not None:
            self._in_thread.join(timeout=2.0)
            if self._in_thread.is_alive():
                log.warning("MIDI input thread still running at close: its port is left open")
                in_port = None
            self._in_thread = None
        self.thru.stop()
        if self.sink is not None:
            self.sink.close()  # All Notes Off: sends only, no graph change
            self.sink = None
        # inputs first (as Server.stop), the input before its SysEx guard (never left with a single peer)
        closers: list[Callable[[], None]] = []
        closers += [functools.partial(close_rtmidi_port, in_port)] if in_port is not None else []
        closers += [self.sysex_guard.close] if self.sysex_guard is not None else []
        closers += [functools.partial(close_rtmidi_port, self.midi_out)] if self.midi_out is not None else []
        close_in_turn(closers, JACK_SETTLE_S if self.backend == "jack" else 0.0)
        self.sysex_guard = None
        self.midi_in = self.midi_out = None
