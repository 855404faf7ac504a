"""The performer's line as the engine hears it: note events quantized to grid steps, one token per step.

Input arrives as timestamped note-ons/offs; each is assigned the nearest step (an onset just before T_k
belongs to step k) and kept pending until that step's window is final, then folded into one token per
step as the contract's skyline: the highest pitch struck or held; ONSET when it was struck in the step
(or the top changed), HOLD when it sounds on, REST when nothing sounds. An event whose nearest step was
already finalized goes to the next open step (counted as late).
"""

from __future__ import annotations

from collections import deque

from liveagent.music.tokens import HOLD, ONSET_BASE, REST


class PerformerLine:
    """Pending performer events and the held keys; ``finalize`` turns a step into its token."""

    def __init__(self) -> None:
        self.held: set[int] = set()
        """Pitches whose key is down (as of the last finalized step, or now while stopped)."""
        self._pending: deque[tuple[int, int, int]] = deque()
        """(quantized step, pitch, velocity) not yet folded into a finalized step."""
        self._onsets: list[int] = []
        self._top = -1
        self.next_step = 0
        """The next step to finalize."""
        self.late = 0
        """Note-ons moved to a later step because theirs was already final."""

    def restart(self, step: int) -> None:
        """A new run from ``step``: forget pending events (keys still held stay held)."""
        self._pending.clear()
        self._top = -1
        self.next_step = step

    def live_note(self, pitch: int, velocity: int) -> None:
        """A note while the transport is stopped: only the held keys change."""
        if velocity > 0:
            self.held.add(pitch)
        else:
            self.held.discard(pitch)

    def add(self, step: int, pitch: int, velocity: int) -> None:
        """A note event whose nearest step is ``step``."""
        if step < self.next_step:
            if velocity > 0:
                self.late += 1
            step = self.next_step
        self._pending.append((step, pitch, velocity))

    def clear_held(self) -> None:
        self.held.clear()

    def finalize(self) -> int:
        """Fold the events of step ``next_step`` into its token, advance, and return the token."""
        j = self.next_step
        pend = self._pending
        held = self.held
        onsets = self._onsets
        onsets.clear()
        while pend and pend[0][0] <= j:
            _, pitch, vel = pend.popleft()
            if vel > 0:
                held.add(pitch)
                onsets.append(pitch)
            else:
                held.discard(pitch)
        top_on = max(onsets) if onsets else -1
        top = max(top_on, max(held) if held else -1)
        if top < 0:
            tok = REST
        elif top == top_on or top != self._top:
            tok = ONSET_BASE + top
        else:
            tok = HOLD
        self._top = top
        self.next_step = j + 1
        return tok
