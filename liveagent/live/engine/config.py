"""The engine's configuration and the small types at its edges (kept apart so engine.py stays short).

Import them from :mod:`liveagent.live.engine.loop`, which re-exports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from liveagent.live.engine.follow import FollowWindow, check_window_ms
from liveagent.live.engine.policy import Policy
from liveagent.music.sampling import SamplerConfig

FOLLOW_CHORD_LIMIT_MS = 30.0
"""The longest chord grace accepted (``follow_chord_ms``, ``serve --follow-chord-ms``)."""


@dataclass
class EngineConfig:
    """How the engine plays. Times in milliseconds, pitches as MIDI numbers."""

    lead_ms: float = 5.0
    """Decide step k this long before T_k (anticipate mode)."""
    follow_window_ms: float = 0.0
    """Follow timing (policies of mode react or follow): step k is decided on the performer's onset for
    k, or when this window after T_k closes without one. 0 = adaptive (see the ``follow_window_*``
    fields and :mod:`liveagent.live.engine.follow`); a value fixes it (at most 100 ms). Never more than half a
    step is used (a later onset is nearer the next step)."""
    follow_budget_ms: float = 5.0
    """Follow timing: a step's decision may be emitted up to this long after its window closed (the engine
    woke up late, the policy was slow) before it is a miss (fallback token); ``miss_tolerance_ms`` adds to
    it. The follow counterpart of anticipate's ``lead_ms``."""
    follow_window_min_ms: float = 3.0
    """Adaptive follow window: its lower clamp (the window of a performer who is never late)."""
    follow_window_max_ms: float = 50.0
    """Adaptive follow window: its upper clamp, and the earliest an early onset is answered (T_k - this).
    50 ms: ensemble onset asynchrony up to 30-50 ms is not heard as uneven (Rasch 1979), and a human
    player is often 30-40 ms behind the grid: with a 30 ms cap a performer 40 ms late (sd 5 ms) was
    never answered in time (answered_pct 0.9 %), with 50 ms 95.4 %
    (see :mod:`liveagent.live.engine.follow`)."""
    follow_window_margin_ms: float = 2.0
    """Adaptive follow window: added to the percentile of the performer's late onset offsets."""
    follow_window_percentile: float = 95.0
    """Adaptive follow window: which percentile of the onset offsets it could catch (positive, at most
    ``follow_window_max_ms``) it covers. 95: under sd-15 ms jitter p90 answered 94.3 % of the onsets and
    p95 96.2 %, for 3.7 ms more on held steps (see :mod:`liveagent.live.engine.follow`)."""
    follow_window_onsets: int = 32
    """Adaptive follow window: how many recent onsets it is measured over (a preallocated ring)."""
    follow_window_warmup_onsets: int = 8
    """Adaptive follow window: until this many onsets are measured it is ``follow_window_max_ms`` (a
    performer not yet heard is not cut short); at most ``follow_window_onsets``."""
    follow_chord_ms: float = 3.0
    """Follow timing: after the first note-on of step k arrives, wait this long for more note-ons of the
    same step (a chord sent as one message per note, by a keyboard or a patch, arrives within a few ms)
    before deciding, so that the policy hears the whole chord (its skyline) whatever the arrival order.
    Never past the window's close + half of ``follow_budget_ms`` (the other half is the decision's). It
    adds to the answer latency; 0 = off (decide on the first note-on)."""
    react_delay_ms: float | None = None
    """Deprecated alias of ``follow_window_ms`` (react policies were decided this long after T_k; they now
    use follow timing): when given and ``follow_window_ms`` is 0, it fixes the follow window."""
    miss_tolerance_ms: float = 0.0
    """A decision ready at most this long after T_k is still played (late) instead of the fallback; 0 =
    strict (DESIGN: no decision at T_k is a miss)."""
    spin_ms: float = 1.0
    """Busy-wait this last stretch before an emission (timed clocks) instead of sleeping."""
    spin_yield: bool = False
    """Spin with ``time.sleep(0)`` (which releases the GIL each turn) instead of a bare loop that holds it:
    lets other engines of the same process run Python during this engine's spin, at the price of up to
    one GIL switch interval (``sys.setswitchinterval``) of lateness when another thread holds the GIL at
    the deadline. For several engines per process; a single engine is better served by the bare spin."""
    waits_for_performer: bool = True
    """The silence gate: rest before the performer's first note and once the performer has been silent
    for a whole bar, until they play again (the rule ``liveagent eval`` applies). False lets the agent
    lead (``serve --no-wait-for-performer``): it plays from the first step whatever the performer does."""
    start_on_note: bool = False
    """Internal and OSC clocks: a start (``/liveagent/start``, ``--autostart``; a continue likewise) arms the
    transport instead, and the performer's first note-on starts it: step 0, the downbeat, at that note's
    time. The agent and its beats then start with the performer and on the performer's phase, with no
    count-in. Otherwise the grid starts at the command, and a performer who cannot hear it (the agent rests
    until they play) lands wherever that left them: a soprano a sixteenth + 64 ms off the beat made the
    band, hearing an off-beat melody, play 3 notes a voice in 4 bars."""
    follow_tempo: bool = False
    """Internal and OSC clocks: the performer leads the tempo. Each step's first onset pulls the grid toward
    it (:meth:`~liveagent.live.engine.clocks.InternalClock.follow_onset`: a phase-locked loop, gains below),
    so a performer a few per cent off ``--bpm`` stays on the agent's beat instead of drifting a sixteenth
    away every few bars (3 % fast: the band thinned to 3-9 onsets a voice in bars 5-8). Within +-10 % of the
    tempo set. ``serve --start-on-note`` turns it on with the start; ``--follow-tempo`` alone."""
    follow_tempo_phase_gain: float = 0.3
    """``follow_tempo``: the share of an onset's error the grid's phase moves by. Simulated on a performer
    jittered by sd 15 ms: 0.3 keeps the onset errors' p95 near a fixed grid's, 0.4-0.5 adds 3-5 ms."""
    follow_tempo_gain: float = 0.3
    """``follow_tempo``: how far the period moves toward the performer's, measured between two onsets a
    beat or more apart (less for closer ones). Simulated: a steady performer 3-10 % off is on the grid
    within 4-8 beats; under sd-15 ms jitter the tempo read stays within +-2.4 BPM (sd 0.8) and the onset
    errors' p95 is 36 ms (a fixed grid: 29)."""
    max_note_steps: int = 32
    """Longest agent note in steps; a HOLD beyond it re-strikes the note (a note-off reaches the synth: no
    note hangs; the voice stays under a long melody note instead of falling silent)."""
    performer_max_hold_bars: float = 4.0
    """Longest performer key hold, in bars, without its note-off while the performer plays other notes:
    then the key is released from the line the policy hears (counted ``performer_notes_timed_out``); a key
    that is all the performer plays (a pedal point) is released after four times as long. A lost note-off
    otherwise holds its pitch on every step for ever: the skyline hides every lower note the performer
    plays and the silence gate stays open against a phantom. 4 bars: longer than any note of the chorale
    corpus the policies learn from (fermatas of one or two bars), and half of the shipped policies' 8-bar
    window. At least one step."""
    velocity_min: int = 30
    """Lowest output velocity."""
    velocity_max: int = 120
    """Highest output velocity."""
    velocity_default: int = 80
    """Output velocity before the performer has played (and the EMA's starting point)."""
    velocity_follow: float = 0.25
    """EMA weight of each new performer velocity (0 = always ``velocity_default``)."""
    velocity_scale: float = 0.9
    """Output velocity = performer EMA x this, clipped to the range (accompaniment under the lead)."""
    pitch_min: int | None = None
    """Lowest pitch the agent may play (None = the policy's ``meta.pitch_min``)."""
    pitch_max: int | None = None
    """Highest pitch the agent may play (None = the policy's ``meta.pitch_max``)."""
    scale: tuple[int, ...] | None = None
    """Allowed pitch classes (0 = C); None = all twelve."""
    temperature: float = 0.0
    """Sampling temperature (0 = greedy)."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    seed: int | None = None
    """Sampler seed (reproducible sampled runs)."""
    beats: bool = True
    """Send ``sink.beat(bar, beat)`` on each beat (0-based bar and beat within the bar)."""
    gc_freeze: bool = True
    """In ``run()``: freeze the heap after warm-up, turn automatic gc off, collect gen 0/1 in slack time."""
    slack_ms: float = 4.0
    """Housekeeping (gc gen 0/1, recorder flush) only when the next deadline is at least this far away."""
    warmup_calls: int = 20
    """Policy calls before playing (first onnxruntime runs are slow)."""
    idle_wait_ms: float = 20.0
    """Longest wait on the queue when nothing is scheduled (stopped transport)."""
    external_poll_ms: float = 2.0
    """While waiting for an external clock's tick past its predicted time, re-check this often."""
    error_report_interval_s: float = 1.0
    """At most one error report per this many seconds through ``sink.error``; the rest are counted."""
    load_in_thread: bool = True
    """Load a swapped-in policy on a helper thread (False: inline, for tests). The loader thread runs at
    normal scheduling by construction (it would otherwise inherit the engine thread's SCHED_FIFO)."""
    status_interval_ms: float = 100.0
    """Publish the status snapshot (all that other threads read: OSC ``/status``, the monitor) at most
    this often, in slack time; sooner after a control event or a STATUS request."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lead_ms) and 0.0 <= self.lead_ms <= 1000.0):
            raise ValueError(f"lead_ms must be in 0..1000, got {self.lead_ms}")
        for name in ("follow_tempo_phase_gain", "follow_tempo_gain"):
            gain = getattr(self, name)
            if not (math.isfinite(gain) and 0.0 <= gain <= 1.0):
                raise ValueError(f"{name} must be in 0..1, got {gain}")
        if self.react_delay_ms is not None and self.follow_window_ms == 0.0:
            self.follow_window_ms = self.react_delay_ms
        check_window_ms(self.follow_window_ms, "follow_window_ms")
        if not (math.isfinite(self.follow_budget_ms) and 0.0 <= self.follow_budget_ms <= 100.0):
            raise ValueError(f"follow_budget_ms must be in 0..100, got {self.follow_budget_ms}")
        if not (math.isfinite(self.follow_chord_ms) and 0.0 <= self.follow_chord_ms <= FOLLOW_CHORD_LIMIT_MS):
            raise ValueError(
                f"follow_chord_ms must be in 0..{FOLLOW_CHORD_LIMIT_MS:g}, got {self.follow_chord_ms}"
            )
        FollowWindow(  # validates the adaptive window's settings
            min_ms=self.follow_window_min_ms,
            max_ms=self.follow_window_max_ms,
            margin_ms=self.follow_window_margin_ms,
            percentile=self.follow_window_percentile,
            size=self.follow_window_onsets,
            warmup=self.follow_window_warmup_onsets,
        )
        if not (math.isfinite(self.status_interval_ms) and 1.0 <= self.status_interval_ms <= 60_000.0):
            raise ValueError(f"status_interval_ms must be in 1..60000, got {self.status_interval_ms}")
        if not (math.isfinite(self.miss_tolerance_ms) and 0.0 <= self.miss_tolerance_ms <= 100.0):
            raise ValueError(f"miss_tolerance_ms must be in 0..100, got {self.miss_tolerance_ms}")
        if not 1 <= self.velocity_min <= self.velocity_max <= 127:
            raise ValueError("need 1 <= velocity_min <= velocity_max <= 127")
        if self.max_note_steps < 1:
            raise ValueError("max_note_steps must be >= 1")
        if not (math.isfinite(self.performer_max_hold_bars) and 0.0 < self.performer_max_hold_bars <= 1000.0):
            raise ValueError(
                f"performer_max_hold_bars must be in (0, 1000], got {self.performer_max_hold_bars}"
            )
        for name in ("pitch_min", "pitch_max"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 127:
                raise ValueError(f"{name} must be a MIDI pitch 0..127, got {v}")
        if self.pitch_min is not None and self.pitch_max is not None and self.pitch_min > self.pitch_max:
            raise ValueError(f"pitch_min {self.pitch_min} > pitch_max {self.pitch_max}")
        if self.scale is not None and not self.scale:
            raise ValueError("scale needs at least one pitch class")
        SamplerConfig(self.temperature, self.top_p, self.seed)  # validates


def follow_window(cfg: EngineConfig) -> FollowWindow:
    """The engine's :class:`FollowWindow` as ``cfg`` describes it."""
    return FollowWindow(
        fixed_ms=cfg.follow_window_ms,
        min_ms=cfg.follow_window_min_ms,
        max_ms=cfg.follow_window_max_ms,
        margin_ms=cfg.follow_window_margin_ms,
        percentile=cfg.follow_window_percentile,
        size=cfg.follow_window_onsets,
        warmup=cfg.follow_window_warmup_onsets,
    )


class PolicyLoaded(NamedTuple):
    """Internal event: a policy finished loading (or failed) on the loader thread."""

    t_ns: int
    policy: Policy | None
    name: str
    error: str = ""
    reply_to: tuple[str, int] | None = None
    from_loader: bool = False
    """True when it ends a load started by ``/policy`` (one load runs at a time; see engine_control)."""


class RecorderLike(Protocol):
    """What the engine needs from :class:`liveagent.live.engine.recording.Recorder`."""

    def performer_note(self, t_ns: int, pitch: int, velocity: int) -> None: ...

    def agent_note(self, t_ns: int, pitch: int, velocity: int, voice: int = 0) -> None:
        """``voice``: the band voice's index (0 = alto, 1 = tenor, 2 = bass); 0 for a solo agent."""
        ...

    def tempo(self, t_ns: int, bpm: float) -> None: ...

    def event(self, t_ns: int, kind: str, **fields: object) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
