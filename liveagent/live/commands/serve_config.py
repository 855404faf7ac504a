"""What `liveagent serve` can be told: :class:`ServeConfig` (the CLI flags map one to one) and
:class:`ServeError`.

Apart from :mod:`~liveagent.live.commands.server`, which wires clock, engine, sinks and inputs from it,
because a configuration is a description, not a machine: ``serve``'s argument parsing builds one without
loading the engine, and the server reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CLOCKS", "DEFAULT_POLICY", "ServeConfig", "ServeError"]

DEFAULT_POLICY = "default"
CLOCKS = ("internal", "midi", "osc", "link")


@dataclass
class ServeConfig:
    """Everything `liveagent serve` can be told (the CLI flags map one to one)."""

    policy: str = DEFAULT_POLICY
    """Policy name (export/NAME.onnx), path to a .onnx, or "rules". "default" falls back to "rules"."""
    clock: str = "internal"
    """internal (BPM), midi (follow MIDI clock on the MIDI input), osc (/tempo, /start, /beat)."""
    bpm: float = 120.0
    """Tempo of the internal/OSC clock (and the MIDI follower's first guess)."""
    link_bpm: float | None = None
    """The tempo a Link clock proposes to its session once joined (None: none; a session of its own then
    starts at ``bpm``, and joining a running session adopts its tempo, as every Link app does)."""
    autostart: bool = False
    """Start playing at once (internal/osc clock) instead of waiting for /start or MIDI Start."""
    osc: bool = True
    """Listen on OSC (the UDP input) and send OSC out."""
    osc_host: str = "127.0.0.1"
    """OSC bind address; a non-loopback address needs ``osc_allow``."""
    osc_port: int = 9000
    """OSC input port (0 = any free port; the ready line says which)."""
    osc_out: str = "127.0.0.1:9001"
    """HOST:PORT that receives /liveagent/out/note, /out/beat, /status and /error."""
    osc_allow: tuple[str, ...] = ()
    """Client addresses/networks allowed to send OSC (required for a non-loopback bind)."""
    osc_max_rate: float = 2000.0
    """OSC messages per second accepted before flood dropping."""
    osc_reply: str = "both"
    """Replies (status, errors) go to the "sender", the "out" address, or "both"."""
    osc_noteoff_repeat: bool = True
    """UDP safety net: each OSC note-off is sent twice, back to back (a lost datagram must not hang a synth
    note); ``--no-osc-noteoff-repeat`` turns it off."""
    midi_in: str | None = None
    """MIDI input port name (exact or unique substring)."""
    midi_out: str | None = None
    """MIDI output port name."""
    virtual: bool = False
    """Open virtual MIDI ports (``<midi_name>:in`` and ``<midi_name>-out:out``) for others to connect."""
    midi_api: str = "auto"
    """rtmidi API (auto honours MIDO_BACKEND; jack; alsa)."""
    midi_name: str = "liveagent"
    """MIDI client name."""
    midi_channels: tuple[int, ...] = ()
    """Performer input channels (0-based); empty = all."""
    midi_out_channel: int = 1
    """Output channel (0-based): MIDI channel 2, apart from a keyboard's default channel 1."""
    band: str = ""
    """Play a band (``--band satb``: alto, tenor, bass under the performer) with a band policy ("" = solo)."""
    band_channels: tuple[int, ...] = (1, 2, 3)
    """The band voices' MIDI output channels (0-based, top-down): MIDI channels 2, 3, 4 by default."""
    midi_thru: bool = False
    """Forward performer notes to the MIDI output."""
    midi_clock_out: bool = False
    """Send MIDI clock (24 PPQN) + Start/Stop as master."""
    style_cc: tuple[int, int] = (16, 17)
    """The style pad's MIDI CCs (x, y) on the performer's channels; 0 = off (``--style-cc``)."""
    mood: str = ""
    """The mood a style policy starts in (``--mood``; "" = its ``style_default``). A policy without a
    style input, or an unknown mood, is a start-up error."""
    temperature: float = 0.0
    """Sampling temperature (0 = greedy)."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    seed: int | None = None
    """Sampler seed."""
    lead_ms: float | None = None
    """Decide each step this long before it is due; None = auto: a quarter step, at least 5 ms (and twice
    the policy's measured p99 decision time + 1 ms), at most 20 ms and half a step. In anticipate mode a
    longer lead costs nothing musically (step k never uses the performer's step k, and step k-1's onsets
    have arrived half a step before T_k); it only absorbs stalls of the machine."""
    follow_window_ms: float = 0.0
    """Follow timing (react/follow policies): a fixed window after T_k in which the performer's onset is
    awaited (0.1..100 ms); 0 = adaptive (p95 of the performer's late onsets the window can catch + 2 ms,
    within 3..50 ms). ``/liveagent/follow`` changes it at run time."""
    follow_chord_ms: float = 3.0
    """Follow timing: the chord grace, how long after a step's first note-on the rest of a chord sent note
    by note is awaited before answering (0 = off). See :attr:`EngineConfig.follow_chord_ms`."""
    waits_for_performer: bool = True
    """Rest before the performer's first note and after a bar of performer silence (False: the agent
    leads, ``--no-wait-for-performer``). See :attr:`EngineConfig.waits_for_performer`."""
    follow_tempo: bool = False
    """Internal/OSC clocks: the performer's onsets pull the grid's phase and tempo (``--follow-tempo``, and
    with ``--start-on-note``). See :attr:`EngineConfig.follow_tempo`."""
    start_on_note: bool = False
    """Internal/OSC clocks: a start arms the transport and the performer's first note-on starts it, as the
    downbeat (``--start-on-note``). See :attr:`EngineConfig.start_on_note`."""
    performer_max_hold_bars: float = 4.0
    """A performer key held this many bars without its note-off is released. See
    :attr:`EngineConfig.performer_max_hold_bars`."""
    pitch_min: int | None = None
    """Lowest agent pitch (default: the policy's)."""
    pitch_max: int | None = None
    """Highest agent pitch (default: the policy's)."""
    record: str | None = None
    """Directory to record the session to (MIDI + JSONL), or None."""
    record_optional: bool = False
    """``record`` is the default folder, not one asked for: if it cannot be used the server warns and plays
    unrecorded (the status says ``record=off`` and why) instead of refusing to start."""
    gc_freeze: bool = True
    """Freeze the heap and turn automatic gc off while playing."""
    rt_priority: int = 20
    """SCHED_FIFO priority of the engine thread (OSC input one below); 0 = normal scheduling. Needs
    CAP_SYS_NICE (or root, or an rtprio limit); without it the server runs normally and says so."""
    osc_rt_priority: int | None = None
    """SCHED_FIFO priority of the OSC input thread (timestamps of performer input); None = one below the
    engine's, 0 = normal scheduling."""
    switch_interval_ms: float = 0.5
    """Python's GIL switch interval while serving: how long the engine may wait for another thread."""
    extra_engine: dict[str, object] = field(default_factory=dict)
    """Further EngineConfig fields (benchmarks, tests)."""


class ServeError(Exception):
    """A configuration or start-up error: the CLI prints it and exits with status 2."""
