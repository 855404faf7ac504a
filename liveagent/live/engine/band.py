"""A band's voices in the engine: one note tracker per voice, each on its own output route.

A band policy (metadata ``band``) plays several voices; the engine decides them one after another in the
band's order inside the same step (:func:`~liveagent.live.engine.steps.decide_step`) and emits them
together. Each voice's notes go through its own :class:`~liveagent.live.engine.notes.NoteTracker`, so
every note-on of every voice gets its note-off on every path the solo line has (REST, new onset, stop,
mute, panic, swap, exit, signal). The tracker talks to a :class:`VoiceSink`: the sink's
``band_note_on(voice, ...)`` / ``band_note_off(voice, ...)`` (its own MIDI channel, its own OSC address
``/liveagent/out/VOICE/note``), or plain note_on/note_off for a sink that knows no band.
"""

from __future__ import annotations

from liveagent.live.engine.notes import NoteTracker
from liveagent.live.engine.policy import Policy, PolicyError
from liveagent.live.events import OutputSink
from liveagent.music.band import BandSpec


class VoiceSink:
    """The note methods of ``sink`` for band voice ``voice`` (index top-down); the rest forwarded."""

    def __init__(self, sink: OutputSink, voice: int) -> None:
        self.sink = sink
        self.voice = voice
        on = getattr(sink, "band_note_on", None)
        off = getattr(sink, "band_note_off", None)
        self._routed = callable(on) and callable(off)

    def note_on(self, pitch: int, velocity: int) -> None:
        if self._routed:
            self.sink.band_note_on(self.voice, pitch, velocity)  # type: ignore[attr-defined]
        else:
            self.sink.note_on(pitch, velocity)

    def note_off(self, pitch: int) -> None:
        if self._routed:
            self.sink.band_note_off(self.voice, pitch)  # type: ignore[attr-defined]
        else:
            self.sink.note_off(pitch)

    def all_notes_off(self) -> None:
        self.sink.all_notes_off()


def voice_trackers(sink: OutputSink, band: BandSpec | None) -> list[NoteTracker]:
    """One tracker per band voice (top-down); empty for a solo policy."""
    if band is None:
        return []
    return [NoteTracker(VoiceSink(sink, v)) for v in range(band.size)]  # type: ignore[arg-type]


def check_swap(current: Policy, new: Policy) -> None:
    """A band is swapped only for a band of the same voices, a solo policy only for a solo one."""
    a, b = current.meta.band, new.meta.band
    if (a is None) != (b is None):
        what = "a band" if a is not None else "a solo line"
        raise PolicyError(f"{new.name} cannot replace {current.name}: the engine plays {what}")
    if a is not None and b is not None and a.voices != b.voices:
        raise PolicyError(f"{new.name} plays {', '.join(b.voices)}, the band is {', '.join(a.voices)}")
