"""The live server: policy + clock + engine + OSC/MIDI inputs and outputs, wired together.

`liveagent serve`, `liveagent demo` and the benchmarks all build a :class:`Server` from a
:class:`~liveagent.live.commands.serve_config.ServeConfig` (its own module, with :class:`ServeError`). The
engine runs on its own thread ("liveagent-engine"); the OSC server thread and the rtmidi callback only enqueue
into it; the main thread waits for a signal (or runs the monitor). Shutdown order matters: inputs first
(nothing new arrives), then the engine (every note off, recording closed), then the outputs (All Notes Off
once more, sockets and ports closed). What is checked and built from the configuration alone before that
(flags, policy, band, clock, MIDI configuration, lead time) is :mod:`~liveagent.live.commands.server_setup`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from liveagent.live.commands.serve_config import ServeConfig, ServeError
from liveagent.live.commands.server_setup import (
    auto_lead,
    check_band,
    check_clock_flags,
    make_clock,
    midi_config,
    realtime_thread,
    resolve_policy,
)
from liveagent.live.engine.config import EngineConfig
from liveagent.live.engine.loop import Engine
from liveagent.live.engine.policy import Policy, PolicyError
from liveagent.live.engine.recording import Recorder
from liveagent.live.events import Control, ControlEvent, FanOutSink, InputEvent, OutputSink
from liveagent.live.io.midi import MidiIO
from liveagent.live.io.osc import (
    OscServer,
    OscServerConfig,
    OscSink,
    OscSinkConfig,
    parse_host_port,
)
from liveagent.live.style_rules import StyleError, StyleRequest
from liveagent.live.style_rules import resolve as resolve_style
from liveagent.music.features import hears_current_step
from liveagent.music.tokens import Grid

__all__ = ["IOStatusSink", "Server", "check_band", "realtime_thread", "resolve_policy"]

log = logging.getLogger(__name__)


class IOStatusSink:
    """Wraps the output sink to add the I/O counters (OSC, MIDI) and process facts to every status reply."""

    def __init__(self, inner: OutputSink, server: Server) -> None:
        self.inner = inner
        self.server = server

    def note_on(self, pitch: int, velocity: int) -> None:
        self.inner.note_on(pitch, velocity)

    def note_off(self, pitch: int) -> None:
        self.inner.note_off(pitch)

    def band_note_on(self, voice: int, pitch: int, velocity: int) -> None:
        self.inner.band_note_on(voice, pitch, velocity)

    def band_note_off(self, voice: int, pitch: int) -> None:
        self.inner.band_note_off(voice, pitch)

    def all_notes_off(self) -> None:
        self.inner.all_notes_off()

    def beat(self, bar: int, beat: int) -> None:
        self.inner.beat(bar, beat)

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None:
        self.inner.status({**fields, **self.server.io_status()}, reply_to)

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        self.inner.error(message, reply_to)

    def close(self) -> None:
        self.inner.close()


class Server:
    """Build with a config (errors: :class:`ServeError`), :meth:`start`, later :meth:`stop` (idempotent)."""

    def __init__(self, config: ServeConfig, policy: Policy | None = None) -> None:
        self.config = cfg = config
        check_clock_flags(cfg)
        self.warning = ""
        if policy is None:
            try:
                policy, self.warning = resolve_policy(cfg.policy)
            except PolicyError as e:
                raise ServeError(f"cannot load policy {cfg.policy!r}: {e}") from e
        self.policy = policy
        m = policy.meta
        self.band = check_band(policy, cfg.band, cfg.band_channels)
        """The band's voices, top-down (empty: a solo line)."""
        self.grid = Grid(m.steps_per_beat, m.beats_per_bar)
        self.clock = make_clock(cfg, self.grid, self._submit)
        self.osc_server: OscServer | None = None
        self.midi: MidiIO | None = None
        self.osc_sink: OscSink | None = None
        self.recorder: Recorder | None = None
        self.record_error = ""
        """Why the default recording folder could not be used ("" when recording or told not to)."""
        self._stopped = False
        self._lock = threading.Lock()
        self.realtime = "off"
        sinks: list[OutputSink] = []
        try:
            if cfg.osc:
                out = parse_host_port(cfg.osc_out)
                try:  # resolves a host name once, here, before `ready` (never per datagram)
                    self.osc_sink = OscSink(
                        OscSinkConfig(
                            out=out, reply=cfg.osc_reply, noteoff_twice=cfg.osc_noteoff_repeat, band=self.band
                        )
                    )
                except ValueError as e:
                    raise ServeError(f"--osc-out {cfg.osc_out}: {e}") from e
                sinks.append(self.osc_sink)
            if cfg.midi_in or cfg.midi_out or cfg.virtual or cfg.clock == "midi":
                if cfg.clock == "midi" and not (cfg.midi_in or cfg.virtual):
                    raise ServeError("--clock midi needs a MIDI input (--midi-in NAME or --virtual)")
                self.midi = MidiIO(self._submit, midi_config(cfg, self.band))
                if self.midi.sink is not None:
                    sinks.append(self.midi.sink)
            sink = IOStatusSink(FanOutSink(*sinks), self)
            self.recorder = self._make_recorder(m.beats_per_bar)
            try:
                self.lead_ms = (
                    cfg.lead_ms if cfg.lead_ms is not None else auto_lead(policy, self.grid, cfg.bpm)
                )
                ecfg = EngineConfig(
                    lead_ms=self.lead_ms,
                    follow_window_ms=cfg.follow_window_ms,
                    follow_chord_ms=cfg.follow_chord_ms,
                    waits_for_performer=cfg.waits_for_performer,
                    start_on_note=cfg.start_on_note,
                    follow_tempo=cfg.follow_tempo,
                    performer_max_hold_bars=cfg.performer_max_hold_bars,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    seed=cfg.seed,
                    pitch_min=cfg.pitch_min,
                    pitch_max=cfg.pitch_max,
                    gc_freeze=cfg.gc_freeze,
                    **cfg.extra_engine,  # type: ignore[arg-type]
                )
            except (ValueError, TypeError) as e:
                raise ServeError(str(e)) from e
            try:
                self.engine = Engine(
                    policy,
                    sink,
                    self.clock,
                    ecfg,
                    recorder=self.recorder,
                )
            except PolicyError as e:
                raise ServeError(str(e)) from e
            self.sink = sink
            if cfg.mood:
                self._start_mood(policy, cfg.mood)
            if cfg.osc:
                try:
                    self.osc_server = OscServer(
                        self._submit,
                        OscServerConfig(
                            host=cfg.osc_host,
                            port=cfg.osc_port,
                            allow=cfg.osc_allow,
                            max_rate=cfg.osc_max_rate,
                        ),
                        status_handler=self._reply_status,
                    )
                except (OSError, ValueError) as e:
                    raise ServeError(str(e)) from e
        except BaseException:
            self._close_io()
            self._close_clock()
            if self.recorder is not None:
                self.recorder.discard()  # nothing was played: leave no empty session files
            raise

    def _start_mood(self, policy: Policy, mood: str) -> None:
        """``--mood``: checked by the rules every request obeys, then handed to the engine (stopped: it
        applies at once, before the first step)."""
        try:
            resolve_style(policy.meta, StyleRequest(mood=mood), policy.name)
        except StyleError as e:
            raise ServeError(f"--mood {mood}: {e}") from e
        self.engine.submit(ControlEvent(time.perf_counter_ns(), Control.MOOD, text=mood))

    def _make_recorder(self, beats_per_bar: int) -> Recorder | None:
        """The session recorder, or None. A folder that fails is a clear error when asked for
        (``--record DIR``); for the default folder a warning, and the show goes on unrecorded."""
        cfg = self.config
        if not cfg.record:
            return None
        try:
            return Recorder(Path(cfg.record), bpm=cfg.bpm, beats_per_bar=beats_per_bar, voices=self.band)
        except OSError as e:
            reason = f"cannot record to {cfg.record}: {e.strerror or e}"
            if not cfg.record_optional:
                raise ServeError(f"{reason} (--no-record plays without recording)") from e
            self.record_error = reason
            warning = f"{reason}: this session is not recorded"
            log.warning("%s", warning)
            self.warning = f"{self.warning}; {warning}" if self.warning else warning
            return None

    def _submit(self, event: InputEvent) -> None:
        # MIDI input opens before the engine exists (its output is part of the engine's sink): drop until then
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.submit(event)

    # -- lifecycle
    def start(self) -> None:
        """Start the engine thread and the inputs; after this the server accepts input."""
        if self.config.switch_interval_ms > 0:
            sys.setswitchinterval(self.config.switch_interval_ms / 1000.0)
        prio = self.config.rt_priority
        with realtime_thread(prio) as ok:
            self.engine.start()
        self.realtime = f"fifo:{prio}" if ok else "off"
        if self.osc_server is not None:
            osc_prio = self.config.osc_rt_priority
            if osc_prio is None:
                osc_prio = max(1, prio - 1) if ok else 0
            with realtime_thread(osc_prio):
                self.osc_server.start()
        if self.config.autostart:
            if self.config.clock == "midi":
                log.warning("--autostart ignored with --clock midi (the master's Start starts playing)")
            else:
                self.engine.submit(ControlEvent(time.perf_counter_ns(), Control.START))

    def ready_line(self) -> str:
        """The one line `serve` prints on stdout when it accepts input (scripts wait for it)."""
        parts = ["ready"]
        if self.osc_server is not None:
            parts.append(f"osc={self.osc_server.host}:{self.osc_server.port}")
        if self.osc_sink is not None:
            parts.append(f"osc_out={self.osc_sink.out[0]}:{self.osc_sink.out[1]}")
        if self.midi is not None:
            if self.midi.in_name:
                parts.append(f"midi_in={self.midi.in_name}")
            if self.midi.out_name:
                parts.append(f"midi_out={self.midi.out_name}")
            parts.append(f"midi_backend={self.midi.backend}")
            if self.midi.midi_in is not None:
                parts.append(f"midi_in_channels={self.midi.channels_label()}")
            if self.midi.sink is not None:
                parts.append(f"midi_out_channel={self.midi.sink.channel + 1}")
        parts += [
            f"policy={self.policy.name}",
            f"clock={self.config.clock}",
            f"bpm={self.config.bpm:g}",
            f"mode={self.policy.meta.mode}",
            f"lead_ms={self.lead_ms:g}",
            f"timing={'follow' if hears_current_step(self.policy.meta.mode) else 'anticipate'}",
            f"follow_window={f'{fw:g}ms' if (fw := self.config.follow_window_ms) > 0 else 'adaptive'}",
            f"follow_chord={self.config.follow_chord_ms:g}ms",
            f"wait_for_performer={int(self.config.waits_for_performer)}",
            f"rt={self.realtime}",
        ]
        if self.band:
            parts.append(f"band={self.config.band}:{','.join(self.band)}")
            if self.midi is not None and self.midi.sink is not None:
                parts.append(f"band_channels={','.join(str(c + 1) for c in self.config.band_channels)}")
        if self.policy.meta.style_dim:
            parts.append(f"mood={self.config.mood or self.policy.meta.style_default or 'none'}")
        if self.recorder is not None:
            parts.append(f"record={self.recorder.midi_path}")
        return " ".join(parts)

    def engine_alive(self) -> bool:
        return self.engine.is_alive()

    def io_status(self) -> dict[str, object]:
        """The I/O counters (plain ints their threads bump) and process facts; no engine state."""
        out: dict[str, object] = {"torch_loaded": int("torch" in sys.modules)}
        out["record"] = str(self.recorder.midi_path) if self.recorder is not None else "off"
        if self.record_error:
            out["record_error"] = self.record_error
        if self.osc_server is not None:
            c = self.osc_server.counters
            out.update(
                osc_in=c.accepted, osc_errors=c.errors, osc_flood_dropped=c.flood_dropped, osc_denied=c.denied
            )
            out.update(
                osc_datagrams=c.datagrams,
                osc_messages=c.messages,
                osc_undecodable=c.undecodable,
                osc_status_limited=c.status_limited,
                osc_policy_limited=c.policy_limited,
                osc_control_limited=c.control_limited,
                osc_panic_collapsed=c.panic_collapsed,
                osc_senders_evicted=c.senders_evicted,
            )
        if self.osc_sink is not None:
            out.update(
                osc_send_errors=self.osc_sink.send_errors,
                osc_noteoff_repeats=self.osc_sink.noteoff_repeats,
            )
        if self.midi is not None:
            mc = self.midi.counters
            out.update(midi_in=mc.notes, midi_errors=mc.errors, midi_echo_suppressed=mc.echo_suppressed)
            out.update(midi_messages=mc.messages, midi_ignored=mc.ignored)
            guard = self.midi.sysex_guard
            out.update(
                midi_sysex_guard=int(guard is not None), midi_sysex_guard_sent=guard.sent if guard else 0
            )
            out.update(midi_filtered=mc.filtered, midi_notes_off_in=mc.notes_off_in)
            out.update(midi_filtered_on_out_channel=mc.filtered_on_out_channel)
            out.update(midi_style_cc=mc.style_cc, midi_style_cc_coalesced=mc.style_cc_coalesced)
            out.update(self.midi.thru.status())
        return out

    def housekeeping(self) -> None:
        """Log what the input threads only counted (they must not block on logging): each channel whose
        notes are filtered, once. Called by serve's main loop, never by the engine or an input thread."""
        midi = self.midi
        if midi is not None:
            for warning in midi.filtered_warnings():
                log.warning("%s", warning)

    def status(self) -> dict[str, object]:
        """Engine status plus I/O counters, from any thread: the snapshot the engine thread published in
        its slack time (at most ``status_interval_ms`` old), never a read of its live state."""
        return {**self.engine.status(), **self.io_status()}

    def _reply_status(self, reply_to: tuple[str, int]) -> None:
        """/liveagent/status, answered on the OSC thread from the published snapshot (the engine thread
        spends nothing on a request; a client polling in a loop costs the OSC thread a send per request,
        the encoding at most every 20 ms, within the reply rate limit)."""
        sink = self.osc_sink
        if sink is not None:
            sink.status_cached(self.status, reply_to)

    def _close_io(self) -> None:
        if self.osc_server is not None:
            self.osc_server.stop()
            self.osc_server = None
        if self.midi is not None:
            self.midi.close()  # closes the MIDI sink too (All Notes Off)
            self.midi = None
        if self.osc_sink is not None:
            self.osc_sink.close()
            self.osc_sink = None

    def stop(self) -> None:
        """Inputs off, engine stopped (notes off, recording closed), outputs closed. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self.osc_server is not None:
            self.osc_server.stop()
            self.osc_server = None
        if self.midi is not None and self.midi.midi_in is not None:
            try:
                self.midi.midi_in.cancel_callback()
            except Exception as e:  # a port already gone must not stop the shutdown
                log.debug("cancel MIDI callback: %s", e)
        if hasattr(self, "engine"):
            self.engine.stop()
            if self.engine_alive():
                log.error("engine thread did not stop in time; closing outputs anyway")
                self.engine.close()
        self._close_io()
        self._close_clock()

    def _close_clock(self) -> None:
        """Clocks with a thread of their own (Link) stop it here."""
        close = getattr(getattr(self, "clock", None), "close", None)
        if close is not None:
            close()
