"""The performer leads the internal clock (``EngineConfig.follow_tempo``, ``serve --follow-tempo`` and
``--start-on-note``): their onsets move the grid, as an accompanist follows a soloist.

Two corrections, both on the engine thread, fed with each step's first onset:

- **Phase and tempo** (:meth:`~liveagent.live.engine.clocks.InternalClock.follow_onset`): a phase-locked
  loop toward the onset's nearest step. It keeps a performer a few per cent off ``--bpm`` on the beat, and
  a grace note or a slightly early first note stops mattering after a few beats.
- **Beat position**: a loop locked to the nearest *step* keeps a whole-sixteenth displacement for ever: a
  first note that was a pickup, a grace or a wrong note a sixteenth before the real downbeat puts every
  later beat of the performer on serve's "e" (the band, hearing an off-beat melody, played 4 notes a voice
  in 4 bars where it plays 17 on the beat). When the last :data:`VOTES` onsets all fall on the same
  position within the beat, and it is not the beat, the grid moves later by that many steps so that it
  becomes the beat. It moves after the step of the deciding onset has been played, so no decided step is
  reopened; the agent holds over the gap (at most three sixteenths, once). An eighth-note line (beat and
  "and" alternating) or any line that ever touches the beat does not move it.
"""

from __future__ import annotations

from liveagent.live.engine.clocks import InternalClock, OscTransportClock
from liveagent.music.tokens import Grid

VOTES = 4
"""Consecutive onsets on one off-beat position that move the beat there (4: a bar of quarter notes)."""

MIN_GAP_STEPS = 0.75
"""A note-on carries the beat only this many steps or more after the performer's previous note-on."""

MOVE_EVERY_BARS = 2
"""At most one beat move per this many bars: a stream of note-ons voting for moves cannot keep the grid
sliding (each move delays it by up to three steps)."""

_NO_STEP = -(2**62)


class PerformerLead:
    """Feeds the performer's onsets to the clock (:meth:`onset`) and moves the beat when they vote for it
    (:meth:`after_step`). Preallocated; no allocation per onset."""

    def __init__(self, clock: InternalClock, grid: Grid, *, phase_gain: float, tempo_gain: float) -> None:
        self.clock = clock
        self.phase_gain = phase_gain
        self.tempo_gain = tempo_gain
        self._spbeat = grid.steps_per_beat
        self._spbar = grid.steps_per_bar
        self._next_move = _NO_STEP
        self._ring = [0] * VOTES
        self._n = 0
        self._shift = 0
        self._shift_after = _NO_STEP
        self._last_note_ns = _NO_STEP
        self.beat_moves = 0
        """How often the beat moved to the performer's (status ``lead_beat_moves``)."""

    def restart(self) -> None:
        """A new transport session: forget the votes."""
        self._n = 0
        self._shift = 0
        self._next_move = _NO_STEP
        self._last_note_ns = _NO_STEP

    def note_on(self, t_ns: int, step: int, first: bool) -> None:
        """Every performer note-on (``first``: the first of its step). Only a note-on at least
        :data:`MIN_GAP_STEPS` after the one before carries the beat: the later notes of a rolled chord, a
        glissando, a run faster than the grid or an echoed datagram do not (a review: chords rolled 40 ms a
        note ran the grid at +11 %; a datagram echoed 90 ms later, at +25 %)."""
        gap = t_ns - self._last_note_ns
        self._last_note_ns = t_ns
        if first and gap >= MIN_GAP_STEPS * self.clock.period_ns():
            self.onset(t_ns, step)

    def onset(self, t_ns: int, step: int) -> None:
        """An onset that carries the beat, heard for ``step`` (at ``t_ns``)."""
        clock = self.clock
        if isinstance(clock, OscTransportClock) and clock.beats_seen:
            return  # a patch sends the beat: it leads (two leaders made the beats wobble by +-60 ms)
        self.clock.follow_onset(t_ns, step, phase_gain=self.phase_gain, tempo_gain=self.tempo_gain)
        if self._spbeat < 2 or self._shift:
            return
        ring = self._ring
        ring[self._n % VOTES] = step % self._spbeat
        self._n += 1
        pos = ring[0]
        if self._n >= VOTES and pos != 0 and all(p == pos for p in ring) and step >= self._next_move:
            self._shift = pos
            self._shift_after = step
            self._n = 0

    def after_step(self, k: int) -> None:
        """Step k has been played: a beat move voted for at or before it happens now."""
        if self._shift and k >= self._shift_after:
            if self.clock.shift_steps(self._shift):
                self.beat_moves += 1
                self._next_move = k + MOVE_EVERY_BARS * self._spbar
            self._shift = 0
