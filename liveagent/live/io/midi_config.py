"""What a :class:`~liveagent.live.io.midi.MidiIO` is told (:class:`MidiConfig`), what it counts
(:class:`MidiCounters`) and how it names the channels to a musician (:func:`channels_label`,
:func:`filtered_channel_warning`).

Apart from :mod:`~liveagent.live.io.midi`, which owns the ports and threads, because a configuration is a
description, not a machine: ``serve`` builds one from its flags (and rejects bad channels) before any port
is opened, and the counters are plain ints the input thread bumps and the status reads, nothing of the
input's logic; the channel texts are pure functions of the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MidiConfig", "MidiCounters", "channels_label", "filtered_channel_warning"]


@dataclass
class MidiConfig:
    """MIDI ports and behaviour."""

    api: str = "auto"
    """rtmidi API: auto (MIDO_BACKEND, else ALSA then JACK), jack, alsa."""
    in_port: str | None = None
    """Input port to connect to (exact or unique substring); None = none (unless ``virtual``)."""
    out_port: str | None = None
    """Output port to connect to; None = none (unless ``virtual``)."""
    virtual: bool = False
    """Open virtual ports ``<client_name>:in`` / ``<client_name>-out:out`` that others connect to."""
    client_name: str = "liveagent"
    """Client name in JACK/ALSA (the output client gets ``-out`` appended)."""
    in_channels: tuple[int, ...] = ()
    """Input channels 0..15 that count as the performer; empty = all, but ``out_channel`` when there is
    an output port (so our own output looped back is never taken for the performer)."""
    out_channel: int = 1
    """Output channel 0..15 of the accompaniment: 1 (MIDI channel 2) by default, apart from channel 1,
    where keyboards send by default (it was 0, so the performer's note-offs were taken for our echo)."""
    band_channels: tuple[int, ...] = ()
    """Output channels 0..15 (0-based) of the band's voices, top-down: ``serve --band-channels 2,3,4``
    (1-based) is ``(1, 2, 3)`` here; ``band_note_on(voice, ...)`` plays on ``band_channels[voice]``. Each is
    the agent's channel like ``out_channel`` (never the performer's by default; echo-checked). Empty = no
    band."""
    thru: bool = False
    """Forward the performer's notes to the output (on ``out_channel``) as they arrive (a thread of its
    own sends them; a feedback loop turns thru off, see the module docstring)."""
    feedback_ms: float = 30.0
    """An input message on ``out_channel`` with the very bytes of one we sent within this window is our
    own echo: ignored (a note-off only while the performer holds no such key on that channel)."""
    thru_loop_ms: float = 100.0
    """A performer note equal to the last one thru sent for its pitch, within this window, is thru coming
    back (a MIDI loop): thru stops (``thru_loops``). A performer cannot repeat a key this fast without a
    note-off between (which the match would have to be)."""
    in_poll_ms: float = 0.5
    """The input thread empties RtMidi's input queue this often (see the module docstring): up to this
    much dispatch delay; the time stamps are RtMidi's, taken on arrival, so onsets and clock ticks keep
    their times."""
    in_rt_priority: int = 19
    """SCHED_FIFO priority of the input thread (below serve's engine, 20; as OSC input); 0 = normal."""
    thru_rt_priority: int = 18
    """SCHED_FIFO priority of the thru thread (below serve's engine, 20, and OSC input, 19); 0 = normal
    scheduling. Without it the thread's wake-up waited behind every busy process of a loaded machine
    (measured: p99 1.3-5 ms, max 20 ms on two loaded cores). Falls back to normal without permission."""
    thru_max_rate: float = 200.0
    """Thru messages per second (over one second) above which thru is a loop even when what comes back is
    changed on its way (transposed, re-channelled): a glissando over the whole keyboard in one second is
    176 messages."""
    style_cc: tuple[int, int] = (16, 17)
    """The style pad's CCs (x, y) on the performer's channels: 0..127 -> -1..1, sent as ``/liveagent/style x
    y`` would be (CC 16-19 are the General Purpose controllers); 0 turns one off."""
    sysex_guard_s: float = 0.25
    """End a SysEx stuck open this often (:class:`~liveagent.live.io.rtmidi_ports.SysexGuard`); 0 = off."""
    clock_out: bool = False
    """Act as clock master: send Start/Stop and 24 PPQN clock locked to the engine's beats."""
    beats_per_bar: int | None = None
    """The grid's beats per bar, for the clock-out Song Position Pointer; None = learn it from the beat
    indices the engine sends (the last index before a bar line, plus one; 4 until a bar line is seen)."""
    device_time: bool = True
    """Stamp input with the backend's delta times mapped to ``perf_counter_ns`` (see the module docstring);
    False = ``perf_counter_ns()`` when the Python callback runs (jitters with load)."""
    error_reports_per_s: float = 4.0
    """At most this many :class:`InputError` per second reach the engine; the rest are counted."""

    def __post_init__(self) -> None:
        chans = (self.out_channel, *self.in_channels, *self.band_channels)
        if any(not 0 <= c <= 15 for c in chans):
            raise ValueError("MIDI channels are 0..15")
        if len(set(self.band_channels)) != len(self.band_channels):
            raise ValueError(f"band channels must differ, got {[c + 1 for c in self.band_channels]}")
        if not 0 <= self.thru_rt_priority <= 99:
            raise ValueError(f"thru_rt_priority must be in 0..99, got {self.thru_rt_priority}")
        if not (self.thru_loop_ms >= 0 and self.thru_max_rate > 0 and self.feedback_ms >= 0):
            raise ValueError("thru_loop_ms and feedback_ms must be >= 0, thru_max_rate > 0")
        if self.beats_per_bar is not None and not 1 <= self.beats_per_bar <= 32:
            raise ValueError(f"beats_per_bar must be in 1..32, got {self.beats_per_bar}")
        x, y = self.style_cc
        if not (0 <= x <= 119 and 0 <= y <= 119) or (x and x == y):
            raise ValueError(f"style_cc must be two different CC numbers 1..119 (0 = off), got {x},{y}")


class MidiCounters:
    """Written only by the rtmidi callback thread."""

    def __init__(self) -> None:
        self.messages = self.notes = self.clock = self.filtered = self.echo_suppressed = 0
        self.ignored = self.errors = self.reported = self.suppressed = 0
        self.notes_off_in = 0
        """All Notes Off / All Sound Off (CC 123 / 120) on the performer's channels, and System Resets."""
        self.thru = self.thru_echoes = self.thru_loops = 0
        """Thru: messages forwarded; performer notes that were thru coming back; loops broken."""
        self.filtered_on_out_channel = 0
        """Note-ons filtered because they came on one of our output channels (``out_channel`` or a band
        voice's): a keyboard there is not heard."""
        self.filtered_note_channels = 0
        """Bit mask of the channels whose note-ons were filtered (for ``MidiIO.filtered_warnings``)."""
        self.style_cc = 0
        """Style pad CCs (``MidiConfig.style_cc``) received on the performer's channels."""
        self.style_cc_coalesced = 0
        """Of those, the ones folded into a later pad point (at most one point per ``PAD_INTERVAL_NS``)."""

    def snapshot(self) -> dict[str, int]:
        return dict(vars(self))


def channels_label(channels: frozenset[int]) -> str:
    """The performer's input channels as musicians count them (1-based): ``all``, ``all-but-2`` or ``1,3``."""
    chans = sorted(channels)
    if len(chans) == 16:
        return "all"
    if len(chans) == 15:
        return f"all-but-{next(c for c in range(16) if c not in channels) + 1}"
    return ",".join(str(c + 1) for c in chans)


def filtered_channel_warning(
    ch: int, config: MidiConfig, agent_channels: frozenset[int], has_output: bool, performer_label: str
) -> str:
    """Why note-ons on channel ``ch`` (0-based) were not heard, and the flag that changes it."""
    if ch == config.out_channel and has_output:
        why = "it is the agent's output channel"
        fix = f"--midi-out-channel N (another channel) or --midi-channel {ch + 1}"
    elif ch in agent_channels and has_output:
        why = "it is a band voice's output channel"
        fix = f"--band-channels (other channels) or --midi-channel {ch + 1}"
    else:
        why = f"the performer's channels are {performer_label}"
        fix = f"--midi-channel {ch + 1}"
    return f"MIDI notes on channel {ch + 1} are ignored: {why}; play on another channel or pass {fix}"
