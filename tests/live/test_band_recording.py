"""The band's recording: a MIDI track per voice on its own channel, the voice in the log, no hanging notes."""

from __future__ import annotations

import json
from pathlib import Path

import mido

from liveagent.live.engine.recording import Recorder

MS = 1_000_000
VOICES = ("alto", "tenor", "bass")


def _notes(track: mido.MidiTrack) -> list[tuple[str, int, int, int]]:
    """(type, pitch, channel, absolute tick) of a track's notes (a note-on at velocity 0 counts as off)."""
    out, t = [], 0
    for m in track:
        t += m.time
        if m.type in ("note_on", "note_off"):
            kind = "on" if m.type == "note_on" and m.velocity > 0 else "off"
            out.append((kind, m.note, m.channel, t))
    return out


class FakeNow:
    """The recorder's clock, set by hand (0 at the session's start)."""

    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t

    def set_time(self, t_ns: int) -> None:
        self.t = t_ns


def _band_recorder(directory: Path) -> tuple[Recorder, FakeNow]:
    clock = FakeNow()
    return Recorder(directory, name="band", bpm=120, now=clock, voices=VOICES), clock


def test_band_notes_go_to_their_voice_tracks_and_channels(tmp_path: Path) -> None:
    rec, clock = _band_recorder(tmp_path)
    rec.performer_note(500 * MS, 72, 90)  # one beat at 120 BPM = 480 ticks
    for voice, pitch in enumerate((65, 57, 48)):
        rec.agent_note(500 * MS, pitch, 70, voice)
    rec.performer_note(1000 * MS, 72, 0)
    for voice, pitch in enumerate((65, 57, 48)):
        rec.agent_note(1000 * MS, pitch, 0, voice=voice)
    rec.agent_note(1000 * MS, 43, 70, voice=2)  # the bass moves on
    rec.agent_note(1500 * MS, 43, 0, voice=2)
    clock.set_time(1500 * MS)
    rec.close()
    mid = mido.MidiFile(str(rec.midi_path))
    assert [t.name for t in mid.tracks] == ["tempo", "performer", *VOICES]
    assert _notes(mid.tracks[1]) == [("on", 72, 0, 480), ("off", 72, 0, 960)]
    assert _notes(mid.tracks[2]) == [("on", 65, 1, 480), ("off", 65, 1, 960)]
    assert _notes(mid.tracks[3]) == [("on", 57, 2, 480), ("off", 57, 2, 960)]
    assert _notes(mid.tracks[4]) == [
        ("on", 48, 3, 480),
        ("off", 48, 3, 960),
        ("on", 43, 3, 960),
        ("off", 43, 3, 1440),
    ]
    lines = [json.loads(x) for x in rec.log_path.read_text().splitlines()]
    assert lines[0]["kind"] == "session" and lines[0]["voices"] == list(VOICES)
    agent = [
        (x["voice"], x["pitch"], x["velocity"])
        for x in lines
        if x["kind"] == "note" and x["track"] == "agent"
    ]
    assert agent == [
        ("alto", 65, 70), ("tenor", 57, 70), ("bass", 48, 70),
        ("alto", 65, 0), ("tenor", 57, 0), ("bass", 48, 0),
        ("bass", 43, 70), ("bass", 43, 0),
    ]  # fmt: skip
    assert all("voice" not in x for x in lines if x["kind"] == "note" and x["track"] == "performer")


def test_close_releases_every_voice_and_the_performer(tmp_path: Path) -> None:
    """Notes left sounding (no note-off ever recorded) end at close, in every track."""
    rec, clock = _band_recorder(tmp_path)
    rec.performer_note(0, 72, 90)
    for voice, pitch in enumerate((65, 57, 48)):
        rec.agent_note(0, pitch, 70, voice)
    rec.agent_note(500 * MS, 60, 70, 0)  # alto: a second note over the first (two sound)
    clock.set_time(1000 * MS)
    rec.event(1000 * MS, "end")
    rec.close()
    mid = mido.MidiFile(str(rec.midi_path))
    for track in mid.tracks[1:]:
        notes = _notes(track)
        ons = sorted(p for k, p, _, _ in notes if k == "on")
        offs = sorted(p for k, p, _, _ in notes if k == "off")
        assert ons == offs, (track.name, notes)
        assert all(t == 960 for k, _, _, t in notes if k == "off"), notes  # at close: two beats
    assert sorted(p for k, p, _, _ in _notes(mid.tracks[2]) if k == "off") == [60, 65]
    lines = [json.loads(x) for x in rec.log_path.read_text().splitlines()]
    assert lines[-1]["kind"] == "end"  # the log keeps what was played; the engine's line stays last


def test_a_flushed_file_closes_sounding_notes_and_goes_on_recording(tmp_path: Path) -> None:
    """Each flush writes a file a killed process leaves behind: its sounding notes end at the flush, and the
    notes go on in the next file."""
    rec, clock = _band_recorder(tmp_path)
    rec.agent_note(0, 48, 70, 2)
    clock.set_time(2000 * MS)  # the bar line: four beats
    rec.flush()
    bass = _notes(mido.MidiFile(str(rec.midi_path)).tracks[4])
    assert bass == [("on", 48, 3, 0), ("off", 48, 3, 1920)]
    rec.agent_note(2500 * MS, 48, 0, 2)
    rec.agent_note(2500 * MS, 50, 70, 2)
    clock.set_time(3000 * MS)
    rec.flush()
    bass = _notes(mido.MidiFile(str(rec.midi_path)).tracks[4])
    assert bass == [("on", 48, 3, 0), ("off", 48, 3, 2400), ("on", 50, 3, 2400), ("off", 50, 3, 2880)]
    rec.close()


def test_solo_format_is_unchanged(tmp_path: Path) -> None:
    """No voices: the agent's one track on channel 2, and no voice in the log (the voice index is ignored)."""
    rec = Recorder(tmp_path, name="solo", bpm=120, now=FakeNow())
    rec.agent_note(500 * MS, 48, 70)
    rec.agent_note(1000 * MS, 48, 0, voice=0)
    rec.close()
    mid = mido.MidiFile(str(rec.midi_path))
    assert [t.name for t in mid.tracks] == ["tempo", "performer", "agent"]
    assert _notes(mid.tracks[2]) == [("on", 48, 1, 480), ("off", 48, 1, 960)]
    lines = [json.loads(x) for x in rec.log_path.read_text().splitlines()]
    assert "voices" not in lines[0]
    assert next(x for x in lines if x["kind"] == "note") == {
        "t": 0.5, "kind": "note", "track": "agent", "pitch": 48, "velocity": 70,
    }  # fmt: skip
