"""The band demo's files, unit-tested: the four-part piano roll (a colour per voice, a legend), the four-part
MIDI file (a track, channel and string instrument per voice) and the band's timing from received messages."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import mido
import numpy as np
import numpy.typing as npt

from liveagent.live.commands.band_demo import VOICES, voice_address, voice_emissions, voice_events
from liveagent.live.commands.duet import PART_COLOURS, plot_band_piano_roll, write_band_midi
from liveagent.live.commands.render import SOPRANO_PROGRAM, VOICE_PROGRAMS, with_instruments
from liveagent.music.tokens import Grid, Note

SOPRANO = [Note(0, 8, 72), Note(8, 8, 74), Note(16, 16, 76)]
BAND = {
    "alto": [Note(0, 16, 67), Note(16, 16, 69)],
    "tenor": [Note(0, 8, 60), Note(8, 8, 62), Note(16, 16, 64)],
    "bass": [Note(0, 32, 48)],
}


def _rgb(hex_colour: str) -> npt.NDArray[np.float64]:
    return np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])


def _pixels_near(img: npt.NDArray[np.float64], rgb: npt.NDArray[np.float64], tol: float = 0.03) -> int:
    return int((np.abs(img[..., :3] - rgb).max(axis=-1) <= tol).sum())


def test_four_part_piano_roll_has_a_colour_per_voice_and_a_legend(tmp_path: Path) -> None:
    png = plot_band_piano_roll(tmp_path / "roll.png", SOPRANO, BAND, Grid(), title="band")
    img = np.asarray(mpimg.imread(str(png)), dtype=np.float64)
    colours = [PART_COLOURS[name] for name in ("soprano", *VOICES)]
    assert len(set(colours)) == 4  # one colour per voice
    for colour in colours:
        notes = _rgb(colour) * 0.9 + 0.1  # a note: alpha 0.9 over the white axes
        assert _pixels_near(img, notes) > 200, colour
        assert _pixels_near(img, _rgb(colour), tol=0.01) > 20, colour  # its legend patch (opaque)


def test_piano_roll_legend_follows_the_parts(tmp_path: Path) -> None:
    """Only the parts given are drawn and named: a band with a silent voice shows that voice's colour in the
    legend only."""
    band = {**BAND, "tenor": []}
    img = np.asarray(
        mpimg.imread(str(plot_band_piano_roll(tmp_path / "r.png", SOPRANO, band, Grid()))), dtype=np.float64
    )
    tenor = _rgb(PART_COLOURS["tenor"])
    assert _pixels_near(img, tenor * 0.9 + 0.1) < 20 and _pixels_near(img, tenor, tol=0.01) > 20


def test_four_part_midi_has_a_track_channel_and_string_per_voice(tmp_path: Path) -> None:
    path = write_band_midi(tmp_path / "duet.mid", SOPRANO, BAND, 100.0, Grid())
    mid = mido.MidiFile(str(path))
    assert [t.name for t in mid.tracks] == ["soprano", *VOICES]
    programs = [{m.program for m in t if m.type == "program_change"} for t in mid.tracks]
    assert programs == [{SOPRANO_PROGRAM}, *({VOICE_PROGRAMS[v]} for v in VOICES)]
    assert len(set.union(*programs)) == 4  # each voice its own instrument
    channels = [{m.channel for m in t if m.type in ("note_on", "note_off")} for t in mid.tracks]
    assert channels == [{0}, {1}, {2}, {3}]
    pitches = [[m.note for m in t if m.type == "note_on" and m.velocity > 0] for t in mid.tracks]
    assert pitches == [[72, 74, 76], [67, 69], [60, 62, 64], [48]]


def test_a_band_session_recording_renders_its_voices_on_strings(tmp_path: Path) -> None:
    """``liveagent render`` of a band's session: the performer on piano, the voices on their strings."""
    from liveagent.live.engine.recording import Recorder

    rec = Recorder(tmp_path, name="s", voices=VOICES)
    t0 = rec.t0_ns
    rec.performer_note(t0, 72, 90)
    for i, p in enumerate((67, 60, 48)):
        rec.agent_note(t0, p, 70, i)
    rec.close()
    mid = mido.MidiFile(str(with_instruments(rec.midi_path, tmp_path / "i.mid")))
    programs = {t.name: {m.program for m in t if m.type == "program_change"} for t in mid.tracks}
    assert programs == {"tempo": set(), "performer": {0}, **{v: {VOICE_PROGRAMS[v]} for v in VOICES}}


def test_voice_events_and_emissions_from_received_messages() -> None:
    """Each voice's notes from its own address; the note-off repeats of the safety net are no emissions; the
    bass's copy on the v1 address is not counted twice."""
    t0, step = 1_000_000_000, 100_000_000
    messages = [
        (t0 + 0 * step + 300, voice_address("alto"), [67, 70]),
        (t0 + 0 * step + 400, voice_address("bass"), [48, 70]),
        (t0 + 0 * step + 450, "/liveagent/out/note", [48, 70]),
        (t0 + 4 * step + 200, voice_address("alto"), [67, 0]),
        (t0 + 4 * step + 210, voice_address("alto"), [67, 0]),  # the repeat
        (t0 + 4 * step + 250, voice_address("alto"), [69, 70]),
        (t0 + 8 * step - 500, voice_address("bass"), [48, 0]),
        (t0 + 8 * step, "/liveagent/out/beat", [2, 0]),
    ]
    ev = voice_events(messages, t0, step, until=t0 + 9 * step)
    assert ev["alto"] == [(0, 67, 70), (4, 67, 0), (4, 67, 0), (4, 69, 70)]
    assert ev["tenor"] == [] and ev["bass"] == [(0, 48, 70), (8, 48, 0)]
    em = voice_emissions(messages, until=t0 + 9 * step)
    assert em["alto"] == [t0 + 300, t0 + 4 * step + 200, t0 + 4 * step + 250]
    assert em["bass"] == [t0 + 400, t0 + 8 * step - 500] and em["tenor"] == []


def test_finish_band_writes_the_four_parts_and_the_timing_report(tmp_path: Path) -> None:
    """What the band's demo writes from a session's received messages (the session is test_demo_band's)."""
    import json

    from liveagent.live.commands.band_demo import BandRun, finish_band

    t0, step = 1_000_000_000, 100_000_000
    grid = Grid()
    melody = [Note(0, 16, 72)]
    messages = [(t0 + 16 * step + 100 * s, "/liveagent/out/beat", [4 + s // 4, 0]) for s in range(0, 16, 4)]
    for i, (v, p) in enumerate(zip(VOICES, (67, 60, 48), strict=True)):
        messages.append((t0 + 16 * step + 200 + i, voice_address(v), [p, 70]))
        messages.append((t0 + 32 * step + 300 + i, voice_address(v), [p, 0]))
        messages.append((t0 + 32 * step + 400 + i, voice_address(v), [p, 0]))  # the repeat
    messages.sort()
    run = BandRun(
        out=tmp_path,
        melody_name="m",
        melody=melody,
        grid=grid,
        count_in=16,
        bpm=150.0,
        policy="rules",
        band="satb",
        messages=messages,
        t0_ns=t0,
        step_ns=float(step),
        t_stop=t0 + 40 * step,
        end_step=48,
        cold_start_s=0.5,
        sent_lateness_ns=[1000, 2000],
        final={"misses": 0, "steps": 40, "timing": "follow"},
    )
    assert finish_band(run) == 0
    report = json.loads((tmp_path / "timing.json").read_text())
    assert report["voice_notes"] == {"alto": 1, "tenor": 1, "bass": 1} and report["misses"] == 0
    assert report["emission_lateness_by_voice_us"]["bass"]["n"] == 2
    assert report["emission_lateness_at_receiver_us"]["n"] == 3 * 2 + 4 and report["beats_received"] == 4
    mid = mido.MidiFile(str(tmp_path / "duet.mid"))
    notes = [[(m.note, m.time) for m in t if m.type == "note_on" and m.velocity > 0] for t in mid.tracks]
    tps = mid.ticks_per_beat // grid.steps_per_beat
    assert notes == [[(72, 16 * tps)], [(67, 16 * tps)], [(60, 16 * tps)], [(48, 16 * tps)]]
    assert (tmp_path / "pianoroll.png").is_file()
