"""Note tracking: every note-on the engine sends gets its note-off.

The agent line is monophonic, but the tracker keeps a set so that no path (a bug, a swap, a panic in
the middle of a step) can leave a pitch sounding at the receiver. The engine calls :meth:`release_all`
on REST, stop, mute, panic, policy swap, exit and in the ``finally`` of its loop; ``max_steps`` guards
the rest (a policy that HOLDs forever).
"""

from __future__ import annotations

from liveagent.live.events import OutputSink


class NoteTracker:
    """Sends note-ons/offs to ``sink`` and remembers what sounds, with each note's age in steps."""

    def __init__(self, sink: OutputSink) -> None:
        self.sink = sink
        self._sounding: dict[int, int] = {}
        """pitch -> steps it has sounded (0 on the step of its onset)."""
        self.last_pitch: int = -1
        """The most recently started pitch still sounding, or -1."""

    @property
    def sounding(self) -> bool:
        return bool(self._sounding)

    def pitches(self) -> list[int]:
        return sorted(self._sounding)

    def age(self, pitch: int | None = None) -> int:
        """Steps the given (default: the latest) note has sounded; -1 when it does not sound."""
        p = self.last_pitch if pitch is None else pitch
        return self._sounding.get(p, -1)

    def note_on(self, pitch: int, velocity: int) -> None:
        """Start ``pitch``; a pitch already sounding is released first (re-strike, never a double on)."""
        if pitch in self._sounding:
            self.note_off(pitch)
        self.sink.note_on(pitch, velocity)
        self._sounding[pitch] = 0
        self.last_pitch = pitch

    def note_off(self, pitch: int) -> None:
        """Release ``pitch`` if it sounds (a no-op otherwise: never an unmatched note-off)."""
        if self._sounding.pop(pitch, None) is not None:
            self.sink.note_off(pitch)
        if pitch == self.last_pitch:
            self.last_pitch = -1

    def release_all(self) -> list[int]:
        """Note-off everything sounding; returns the pitches released."""
        released = list(self._sounding)
        for p in released:
            self.sink.note_off(p)
        self._sounding.clear()
        self.last_pitch = -1
        return released

    def tick(self) -> None:
        """One more step has passed for every sounding note."""
        for p in self._sounding:
            self._sounding[p] += 1

    def panic(self) -> None:
        """Release what we know of, then All Notes Off for whatever we do not."""
        self.release_all()
        self.sink.all_notes_off()
