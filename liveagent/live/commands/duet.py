"""The demo's material and outputs: melodies in, the duet as MIDI, a piano roll and a timing report out.

Melodies are grid notes (:class:`~liveagent.music.tokens.Note`): the held-out chorale sopranos shipped in
``liveagent/data/melodies/``, a user's MIDI file (its first part, or the one ``track`` selects), or the
built-in "ode" when nothing is shipped. No music21, no torch. A band's demo (``demo --band satb``) writes
the four parts the same way: the performer's soprano over the alto, tenor and bass, one track, channel and
instrument and one piano-roll colour each.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from liveagent.music.theory import pitch_name
from liveagent.music.tokens import Grid, Note, notes_to_tokens

log = logging.getLogger(__name__)

ODE_TO_JOY: tuple[tuple[int, float], ...] = (
    (64, 1), (64, 1), (65, 1), (67, 1), (67, 1), (65, 1), (64, 1), (62, 1),
    (60, 1), (60, 1), (62, 1), (64, 1), (64, 1.5), (62, 0.5), (62, 2),
    (64, 1), (64, 1), (65, 1), (67, 1), (67, 1), (65, 1), (64, 1), (62, 1),
    (60, 1), (60, 1), (62, 1), (64, 1), (62, 1.5), (60, 0.5), (60, 2),
)  # fmt: skip
""""Ode to Joy" (public domain), 8 bars: (MIDI pitch, length in beats). The demo's built-in melody, and
(through :func:`one_note_a_beat`) the demo melody of the Pd and Max help patches."""


def one_note_a_beat(melody: Sequence[tuple[int, float]] = ODE_TO_JOY) -> tuple[int, ...]:
    """The melody for a one-note-a-beat step sequencer: per beat, the first pitch that starts in it, or 0
    (a rest) when none does (a note held over the beat; the sequencer's notes last under a beat)."""
    total = int(np.ceil(sum(beats for _, beats in melody)))
    out = [0] * total
    t = 0.0
    for pitch, beats in melody:
        i = int(np.floor(t + 1e-9))
        if out[i] == 0:
            out[i] = pitch
        t += beats
    return tuple(out)


def melodies_dir() -> Path:
    return Path(str(importlib.resources.files("liveagent.data"))) / "melodies"


def list_melodies() -> list[str]:
    """Names ``--melody`` accepts besides a path: the shipped chorale sopranos (index order) and "ode"."""
    from liveagent.music.midi_corpus import list_demo_melodies

    shipped = list_demo_melodies()
    if not shipped:
        d = melodies_dir()
        shipped = sorted(p.stem for p in d.glob("*.mid")) if d.is_dir() else []
    return [*shipped, "ode"]


def builtin_ode(grid: Grid) -> list[Note]:
    notes, t = [], 0
    for pitch, beats in ODE_TO_JOY:
        n = round(beats * grid.steps_per_beat)
        notes.append(Note(t, n, pitch, 90))
        t += n
    return notes


def load_melody(
    spec: str, grid: Grid, bars: int | None = None, track: str | None = None
) -> tuple[str, list[Note]]:
    """(display name, notes starting at step 0) for ``spec``: "chorale", a shipped name, "ode" or a path.

    ``bars`` keeps the first N bars (notes cut at the end); leading silence is removed so the melody
    begins on the first bar after the count-in.
    """
    from liveagent.music.midifile import read_midi, select_tracks

    path: Path | None = None
    shipped = list_melodies()[:-1]
    if spec == "chorale":
        if shipped:
            path = melodies_dir() / f"{shipped[0]}.mid"
        else:
            log.warning("no shipped chorale melodies found: playing the built-in 'ode'")
            spec = "ode"
    elif spec in shipped:
        path = melodies_dir() / f"{spec}.mid"
    elif spec != "ode":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ValueError(f"melody {spec!r}: no such file, and not one of {', '.join(list_melodies())}")
    if path is None:
        name, notes = "ode", builtin_ode(grid)
    else:
        song = read_midi(path, grid)
        if not song.tracks:
            raise ValueError(f"{path}: no notes")
        parts = select_tracks(song, track) if track else [song.tracks[0]]
        notes = sorted((n for p in parts for n in p.notes), key=lambda n: (n.start, n.pitch))
        name = path.stem
    if not notes:
        raise ValueError(f"melody {spec!r} has no notes")
    first_bar = (notes[0].start // grid.steps_per_bar) * grid.steps_per_bar
    notes = [Note(n.start - first_bar, n.length, n.pitch, n.velocity or 90) for n in notes]
    if bars is not None:
        end = bars * grid.steps_per_bar
        notes = [
            Note(n.start, min(n.length, end - n.start), n.pitch, n.velocity) for n in notes if n.start < end
        ]
    return name, notes


def performer_events(notes: Sequence[Note], offset: int) -> list[tuple[int, int, int]]:
    """(step, pitch, velocity) to send, note-offs before note-ons of the same step (velocity 0 = off)."""
    ev: list[tuple[int, int, int, int]] = []
    for n in notes:
        ev.append((n.start + offset, 1, n.pitch, max(1, min(127, n.velocity))))
        ev.append((n.start + n.length + offset, 0, n.pitch, 0))
    ev.sort(key=lambda e: (e[0], e[1]))
    return [(s, p, v) for s, _, p, v in ev]


def agent_notes(events: Sequence[tuple[int, int, int]]) -> list[Note]:
    """Agent notes from received (step, pitch, velocity) note events (velocity 0 = off)."""
    open_: dict[int, tuple[int, int]] = {}
    notes: list[Note] = []
    for step, pitch, vel in events:
        if pitch in open_:
            s, v = open_.pop(pitch)
            if step > s:
                notes.append(Note(s, step - s, pitch, v))
        if vel > 0:
            open_[pitch] = (step, vel)
    last = max((s for s, _, _ in events), default=0)
    for pitch, (s, v) in open_.items():
        notes.append(Note(s, max(1, last - s), pitch, v))
    return sorted(notes, key=lambda n: (n.start, n.pitch))


def write_duet_midi(
    path: Path, performer: Sequence[Note], agent: Sequence[Note], bpm: float, grid: Grid
) -> Path:
    """The duet as a two-track MIDI file with its General MIDI programs (performer piano, agent cello, as
    ``liveagent render`` plays them): without them a DAW plays both parts on piano."""
    from liveagent.live.commands.render import with_instruments
    from liveagent.music.midifile import write_midi

    n = max([x.start + x.length for x in (*performer, *agent)] or [1])
    write_midi(
        path,
        {"performer": notes_to_tokens(performer, n), "agent": notes_to_tokens(agent, n)},
        bpm=bpm,
        grid=grid,
        velocities={"performer": 90, "agent": 75},
    )
    return with_instruments(path, path)


PART_COLOURS: dict[str, str] = {
    "performer": "#1f77b4",
    "agent": "#ff7f0e",
    "soprano": "#1f77b4",
    "alto": "#ff7f0e",
    "tenor": "#2ca02c",
    "bass": "#d62728",
}
"""Piano-roll colours by part (matplotlib's first four: blue, orange, green, red): the performer is blue in
the duet and in the band, where the soprano is the performer's."""


def write_band_midi(
    path: Path, soprano: Sequence[Note], voices: Mapping[str, Sequence[Note]], bpm: float, grid: Grid
) -> Path:
    """The band's four parts as a MIDI file: the performer's soprano, then each voice (alto, tenor, bass) on
    its own track and channel, with General MIDI strings (``render.VOICE_PROGRAMS``, the soprano on violin)
    so a DAW and ``liveagent render`` play a string quartet whose voices can be told apart."""
    from liveagent.live.commands.render import SOPRANO_PROGRAM, with_instruments
    from liveagent.music.midifile import write_midi

    parts = {"soprano": soprano, **voices}
    n = max([x.start + x.length for notes in parts.values() for x in notes] or [1])
    write_midi(
        path,
        {name: notes_to_tokens(notes, n) for name, notes in parts.items()},
        bpm=bpm,
        grid=grid,
        velocities={name: 90 if name == "soprano" else 75 for name in parts},
    )
    return with_instruments(path, path, performer=SOPRANO_PROGRAM)


def plot_piano_roll(
    path: Path, performer: Sequence[Note], agent: Sequence[Note], grid: Grid, title: str = "liveagent duet"
) -> Path:
    """Performer against agent on a beat axis (matplotlib Agg, no display needed)."""
    return plot_parts(path, {"performer": performer, "agent": agent}, grid, title)


def plot_band_piano_roll(
    path: Path,
    soprano: Sequence[Note],
    voices: Mapping[str, Sequence[Note]],
    grid: Grid,
    title: str = "liveagent band",
) -> Path:
    """The performer's soprano and the band's voices, one colour each (:data:`PART_COLOURS`), a legend."""
    return plot_parts(path, {"soprano": soprano, **voices}, grid, title)


def plot_parts(path: Path, parts: Mapping[str, Sequence[Note]], grid: Grid, title: str) -> Path:
    """Parts on a beat axis, in :data:`PART_COLOURS` (others: matplotlib's next colours), with a legend
    in the parts' order (matplotlib Agg, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    spb = grid.steps_per_beat
    spare = iter(
        c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if c not in PART_COLOURS.values()
    )
    colours = {name: PART_COLOURS.get(name) or next(spare, "0.3") for name in parts}
    every = [n for notes in parts.values() for n in notes]
    end = max([n.start + n.length for n in every] or [grid.steps_per_bar])
    pitches = [n.pitch for n in every] or [60]
    fig, ax = plt.subplots(figsize=(max(8.0, end / spb * 0.35), 5.0), dpi=110)
    for name, notes in parts.items():
        color = colours[name]
        for n in notes:
            ax.add_patch(
                plt.Rectangle(
                    (n.start / spb, n.pitch - 0.4),
                    n.length / spb,
                    0.8,
                    facecolor=color,
                    edgecolor="white",
                    alpha=0.9,
                    linewidth=1.0,
                )
            )
    for b in np.arange(0, end / spb + 1e-9, grid.beats_per_bar):
        ax.axvline(b, color="0.6", linewidth=0.8)
    ax.set_xlim(0, end / spb)
    lo, hi = min(pitches) - 2, max(pitches) + 2
    ax.set_ylim(lo, hi)
    ticks = [p for p in range(lo, hi + 1) if p % 12 in (0, 7)]
    ax.set_yticks(ticks, [pitch_name(p) for p in ticks])
    ax.set_xlabel("beat")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    ax.legend(handles=[Patch(color=colours[name], label=name) for name in parts], loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
