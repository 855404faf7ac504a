"""The performer's line as the engine hears it: note events quantized to grid steps, one token per step.

Input arrives as timestamped note-ons/offs; each is assigned the nearest step (an onset just before T_k
belongs to step k) and kept pending until that step's window is final, then folded into one token per
step as the contract's skyline: the highest key down, except that a key struck on the latest onset's step
wins over an older key still down at most a fifth above it (legato: the next note going down before the
last comes up is the new note; an older key further above is another hand and stays on top); ONSET when it
was struck in the step (or the top changed), HOLD when it sounds on, REST when nothing sounds. Lines
without such overlaps give exactly the corpus's tokens (``notes_to_tokens``, the plain skyline).

An event whose nearest step was already finalized goes to the next open step (a note-on there is counted
as late), except under follow timing, where a note-on for the step finalized last (closed by the follow
window before the onset arrived) is folded into that step instead (:meth:`PerformerLine.amend`): the
history then shows the onset on its own step and a HOLD on the next, never a phantom off-beat onset.

A key whose note-off never comes (a cable pulled, a keyboard that drops it, a note-off lost on the way)
must not stay down for ever: the skyline would show its pitch held on every step, hide every lower note
the performer plays after it, and keep the silence gate open against a phantom. So a key is released
from the line after ``max_hold_steps`` finalized steps without its note-off when the performer has played
other notes since it was struck (a phantom hides them), and after ``LONE_HOLD_FACTOR`` times as long when
nothing else was played (a pedal point or a held pad is ordinary music: a musician's review lost a 6-bar
pedal tone, and the agent under it, to a 4-bar limit). Counted ``timed_out``; and
:meth:`PerformerLine.notes_off` releases all keys at once (MIDI All Notes Off / All Sound Off, Stop,
Reset, ``/panic``; counted ``cleared``). A stop releases every key (one held across it is a phantom more often
than a pedal point); a new run (:meth:`PerformerLine.restart`) keeps the keys pressed since, so a note
played with the start itself is heard.
"""

from __future__ import annotations

import sys
from collections import deque

from liveagent.music.tokens import HOLD, ONSET_BASE, REST

LONE_HOLD_FACTOR = 4
"""A key that is all the performer plays is released only after this many times ``max_hold_steps``."""

LEGATO_SPAN = 7
"""Semitones: a new key down at most this far below an older key still down is the melody's next note
(legato); further below, the older key is another hand and stays on top."""

ALL_NOTES = -1
"""The pitch of a pending :meth:`PerformerLine.notes_off`: release every key when its step is finalized."""


class PerformerLine:
    """Pending performer events and the held keys; ``finalize`` turns a step into its token."""

    def __init__(self, max_hold_steps: int = sys.maxsize) -> None:
        if max_hold_steps < 1:
            raise ValueError(f"max_hold_steps must be >= 1, got {max_hold_steps}")
        self.max_hold_steps = max_hold_steps
        """A key down this many finalized steps without its note-off is released (see the module doc)."""
        self.held: dict[int, int] = {}
        """Pitches whose key is down (as of the last finalized step, or now while stopped), each with the
        step it was struck on (the oldest sets when the hold limit releases it)."""
        self._pending: deque[tuple[int, int, int, int]] = deque()
        """(quantized step, pitch, velocity, arrival ns) not yet folded into a finalized step."""
        self._onsets: list[int] = []
        self._top = -1
        self._last_onset = -1
        """The step of the latest note-on (any key): a key older than it was played over."""
        self.next_step = 0
        """The next step to finalize."""
        self.last_token = REST
        """The token of the step finalized last (``next_step - 1``)."""
        self.late = 0
        """Note-ons moved to a later step because theirs was already final."""
        self.amended = 0
        """Note-ons folded into the step finalized last (:meth:`amend`)."""
        self.timed_out = 0
        """Keys released because their note-off had not come after ``max_hold_steps``."""
        self.cleared = 0
        """Keys released by :meth:`notes_off` (All Notes Off, All Sound Off, Stop, Reset, panic, a stop)."""

    def restart(self, step: int) -> None:
        """A new run from ``step``: forget pending events; keep the keys down. The stop already released
        the keys held across it (a phantom more often than a pedal point); a key down now was pressed
        while stopped or with the start itself (a player presses play and plays), and is heard."""
        self._pending.clear()
        self._top = -1
        self.last_token = REST
        self.next_step = step

    def live_note(self, pitch: int, velocity: int) -> None:
        """A note while the transport is stopped: only the held keys change."""
        if velocity > 0:
            self.held[pitch] = self.next_step
        else:
            self.held.pop(pitch, None)

    def notes_off(self, step: int | None = None) -> int:
        """Release every key: now (``step`` None: the transport is stopped, or a panic), or when step
        ``step`` is finalized, after the events that arrived before (pending, in arrival order). Returns
        the keys released now."""
        if step is not None:
            self.add(step, ALL_NOTES, 0)
            return 0
        n = len(self.held)
        self.cleared += n
        self.held.clear()
        return n

    def add(self, step: int, pitch: int, velocity: int, t_ns: int = 0) -> None:
        """A note event whose nearest step is ``step``, arrived at ``t_ns``."""
        if step < self.next_step:
            if velocity > 0:
                self.late += 1
            step = self.next_step
            t_ns = -1  # a moved onset does not time the step it lands on (see onset_time)
        self._pending.append((step, pitch, velocity, t_ns))

    def onset_time(self, step: int) -> int:
        """Arrival time of the first pending note-on whose nearest step is ``step``; -1 when none has
        arrived (a late note-on moved to ``step`` does not count: it arrived for an earlier step)."""
        for s, _pitch, vel, t in self._pending:
            if s == step and vel > 0 and t >= 0:
                return t
        return -1

    def last_onset_time(self, step: int) -> int:
        """Arrival time of the latest pending note-on whose nearest step is ``step`` (-1 when none): a
        chord sent one note-on per message is awaited a grace after its LAST note so far (a spread chord
        was decided on its middle note and harmonized under it)."""
        last = -1
        for s, _pitch, vel, t in self._pending:
            if s == step and vel > 0 and t > last:
                last = t
        return last

    def amend(self, pitch: int) -> int:
        """A note-on that belongs to the step finalized last (``next_step - 1``), which was closed without
        it: fold it into that step and return the step's token as it should have been. The key is held
        from then on, so the next step is a HOLD of it (not an onset)."""
        self.amended += 1
        step = self.next_step - 1
        self.held[pitch] = step
        self._last_onset = max(self._last_onset, step)
        if self._skyline() == pitch:  # the new top of the line (the rule of finalize), or struck again
            self._top = pitch
            self.last_token = ONSET_BASE + pitch
        return self.last_token

    def clear_held(self) -> None:
        """Release every key now (``/panic``), counted ``cleared``."""
        self.notes_off()

    def _expire(self, j: int) -> None:
        """Release the keys down for ``max_hold_steps`` steps as of step ``j`` (no allocation unless one
        is released: this runs on every finalized step while a key is down)."""
        held = self.held
        limit = j - self.max_hold_steps
        if min(held.values()) > limit:
            return
        lone_limit = j - LONE_HOLD_FACTOR * self.max_hold_steps
        last = self._last_onset
        for pitch in [p for p, s in held.items() if (s <= limit and last > s) or s <= lone_limit]:
            del held[pitch]
            self.timed_out += 1

    def _skyline(self) -> int:
        """The top of the line: the highest key down, except that a key struck on the latest onset's step
        wins over an older key still down at most :data:`LEGATO_SPAN` above it: legato (the next, lower
        note goes down before the previous one comes up: a musician's review froze the band under a
        descending legato line). An older key further above is another hand (a melody held over a left
        hand's notes, a pedal tone) and stays the top, as in the plain skyline the corpus uses. -1 when
        nothing is down."""
        newest, top_new, top_old = self._last_onset, -1, -1
        for pitch, struck in self.held.items():
            if struck >= newest:
                top_new = max(top_new, pitch)
            else:
                top_old = max(top_old, pitch)
        if top_new >= 0 and top_old <= top_new + LEGATO_SPAN:
            return top_new
        return max(top_new, top_old)

    def finalize(self) -> int:
        """Fold the events of step ``next_step`` into its token, advance, and return the token."""
        j = self.next_step
        pend = self._pending
        held = self.held
        onsets = self._onsets
        onsets.clear()
        while pend and pend[0][0] <= j:
            _, pitch, vel, _t = pend.popleft()
            if vel > 0:
                held[pitch] = j
                onsets.append(pitch)
                self._last_onset = j
            elif pitch == ALL_NOTES:
                self.cleared += len(held)
                held.clear()
                onsets.clear()
            else:
                held.pop(pitch, None)
        if held:
            self._expire(j)
        top_on = max(onsets) if onsets else -1
        top = max(top_on, self._skyline())
        if top < 0:
            tok = REST
        elif top == top_on or top != self._top:
            tok = ONSET_BASE + top
        else:
            tok = HOLD
        self._top = top
        self.last_token = tok
        self.next_step = j + 1
        return tok
