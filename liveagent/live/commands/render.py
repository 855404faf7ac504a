"""`liveagent render FILE.mid -o FILE.wav`: a duet or a recorded session to sound, through FluidSynth.

FluidSynth (the Debian package ``fluidsynth``) renders the MIDI with a General MIDI soundfont (Debian
``fluid-soundfont-gm``, or ``--soundfont`` / ``$LIVEAGENT_SOUNDFONT``) in a subprocess with a timeout. Before
that, a copy of the MIDI file gets one General MIDI program per part, so the two players can be told apart
by ear: the performer on piano, the agent on cello (a track is the agent's when its name says "agent", as
in the demo's duet and in every recorded session), and a band's voices (tracks named alto, tenor, bass, as
in a band's session and its demo) on viola, cello and contrabass: with the performer on violin (the band
demo's soprano) the four parts sound like a string quartet, each its own instrument. The WAV is then read
back (stdlib ``wave`` + numpy) and a silent one is an error: a soundfont that failed to load makes
FluidSynth write zeros and exit 0.

Then it is made to be listened to: FluidSynth's default gain (0.2) left a duet at -24 dBFS peak, -40 dBFS
RMS, so the samples are scaled to :data:`PEAK_DBFS` (rendered at gain :data:`GAINS` first, not scaled up
from a quiet 16-bit file; a rendering that clips is done again at a lower gain). And the silence before
the first note (the demo's count-in bar, or a session recorded from the moment `serve` started) is cut to
:data:`PRE_ROLL_BEATS` of a beat, at the tempo the MIDI file has there.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PERFORMER_PROGRAM = 0
"""General MIDI 1: Acoustic Grand Piano."""
AGENT_PROGRAM = 42
"""General MIDI 43: Cello."""
SOPRANO_PROGRAM = 40
"""General MIDI 41: Violin (the band demo's performer: the top line of a string quartet)."""
VOICE_PROGRAMS: dict[str, int] = {"alto": 41, "tenor": 42, "bass": 43}
"""A band's voices by track name: General MIDI 42 Viola, 43 Cello, 44 Contrabass (distinct strings, so each
voice is heard apart, and each in its own register: a chorale's bass goes down to C2)."""
SAMPLE_RATE = 44100
SILENCE_RMS = 1e-3
"""RMS (full scale = 1) below which a finished rendering (its lead-in cut, scaled) counts as silent: a few
notes measure ~0.01-0.1 (what the tests check a demo's sound against)."""
SILENCE_PEAK = 1e-3
"""Peak (full scale = 1) below which FluidSynth's raw output counts as silent (did the soundfont load?). A
peak, not the RMS: a session with one note after ten minutes of waiting has a whole-file RMS of ~4e-4, yet
it is not silent; FluidSynth's output with nothing to play peaks at a few LSB (~3e-5)."""
SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
"""Where Debian's fluid-soundfont-gm (and other distributions' GM soundfonts) put the soundfont."""
INSTALL_HINT = "install them with: apt-get install fluidsynth fluid-soundfont-gm"
PEAK_DBFS = -1.0
"""The rendered WAV's peak, dB below full scale (a little headroom for lossy encoders and resampling)."""
GAINS = (0.5, 0.1)
"""FluidSynth ``-g`` gains tried in turn: the first whose rendering does not clip is kept and normalised."""
PRE_ROLL_BEATS = 0.5
"""Silence kept before the first note, in beats (the rest before it is cut)."""


class RenderUnavailableError(Exception):
    """FluidSynth or a General MIDI soundfont is missing: the caller says so and carries on."""


class RenderError(Exception):
    """FluidSynth ran but failed, timed out, or wrote a silent file."""


def find_soundfont(explicit: str | None = None) -> Path:
    """The soundfont to use: ``explicit``, else ``$LIVEAGENT_SOUNDFONT``, else the first of
    :data:`SOUNDFONTS` that exists."""
    for cand in (explicit, os.environ.get("LIVEAGENT_SOUNDFONT")):
        if cand:
            if not Path(cand).is_file():
                raise RenderUnavailableError(f"soundfont not found: {cand}")
            return Path(cand)
    for cand in SOUNDFONTS:
        if Path(cand).is_file():
            return Path(cand)
    raise RenderUnavailableError(f"no General MIDI soundfont found ({INSTALL_HINT})")


def find_fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderUnavailableError(f"fluidsynth is not installed ({INSTALL_HINT})")
    return exe


def with_instruments(
    src: Path, dst: Path, *, performer: int = PERFORMER_PROGRAM, agent: int = AGENT_PROGRAM
) -> Path:
    """Copy ``src`` to ``dst`` with a General MIDI program change at the start of every part: a band voice's
    (:data:`VOICE_PROGRAMS`) for a track named alto, tenor or bass, ``agent`` for the channels of a track
    named like "agent", ``performer`` for the others (drums, channel 10, keep their kit)."""
    import mido

    mid = mido.MidiFile(str(src))
    for track in mid.tracks:
        name = next((m.name for m in track if m.type == "track_name"), "")
        program = VOICE_PROGRAMS.get(name.strip().lower(), agent if "agent" in name.lower() else performer)
        channels = sorted({m.channel for m in track if m.type in ("note_on", "note_off")} - {9})
        old = [i for i, m in enumerate(track) if m.type == "program_change"]
        for i in reversed(old):  # a program already there gives way to ours (its time goes to the next)
            if i + 1 < len(track):
                track[i + 1].time += track[i].time
            del track[i]
        at = 1 if track and track[0].type == "track_name" else 0
        for ch in reversed(channels):
            track.insert(at, mido.Message("program_change", channel=ch, program=program, time=0))
    mid.save(str(dst))
    return dst


def wav_rms(path: Path) -> float:
    """RMS of a 16-bit (or 8/32-bit integer) PCM WAV, full scale = 1."""
    with wave.open(str(path), "rb") as w:
        width, frames = w.getsampwidth(), w.readframes(w.getnframes())
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None:
        raise RenderError(f"{path}: unsupported sample width {width}")
    x = np.frombuffer(frames, dtype=dtype).astype(np.float64)
    if width == 1:
        x -= 128.0
    if x.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(x * x)) / float(2 ** (8 * width - 1)))


def wav_peak(path: Path) -> float:
    """Peak absolute sample of a 16-bit PCM WAV, full scale = 1."""
    x, _ = _read_pcm16(path)
    return float(np.abs(x.astype(np.int32)).max()) / 32768.0 if x.size else 0.0


def has_notes(midi: Path) -> bool:
    """Whether ``midi`` holds a note-on with a velocity (a recorded session may hold none);
    :class:`RenderError` naming the file when it cannot be read as MIDI."""
    import mido

    try:
        return any(m.type == "note_on" and m.velocity > 0 for m in mido.MidiFile(str(midi)))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise RenderError(f"{midi} is not a readable MIDI file: {type(e).__name__}: {e}") from e


def first_note_lead_in_s(midi: Path, pre_roll_beats: float = PRE_ROLL_BEATS) -> float:
    """Seconds of the file before its first note-on, less ``pre_roll_beats`` beats at the tempo there (0 when
    the file starts sooner): what to cut from the start of its rendering."""
    import mido

    t, tempo = 0.0, 500_000
    for msg in mido.MidiFile(str(midi)):  # merged tracks, times in seconds (tempo changes applied)
        t += msg.time
        if msg.type == "set_tempo":
            tempo = msg.tempo
        elif msg.type == "note_on" and msg.velocity > 0:
            return max(0.0, t - pre_roll_beats * tempo / 1e6)
    return 0.0


def _read_pcm16(path: Path) -> tuple[np.ndarray, wave._wave_params]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        frames = w.readframes(w.getnframes())
    if params.sampwidth != 2:
        raise RenderError(f"{path}: expected 16-bit samples, got {8 * params.sampwidth}-bit")
    return np.frombuffer(frames, dtype="<i2").reshape(-1, params.nchannels), params


def finish_wav(path: Path, *, cut_s: float = 0.0, peak_dbfs: float = PEAK_DBFS) -> None:
    """Cut ``cut_s`` seconds from the start of a 16-bit WAV and scale it to ``peak_dbfs`` (in place; a
    silent file is left as it is)."""
    x, params = _read_pcm16(path)
    x = x[min(len(x), round(cut_s * params.framerate)) :].astype(np.float64)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0:
        x *= 10 ** (peak_dbfs / 20) * 32767 / peak
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(np.round(x).astype("<i2").tobytes())


def _clipped(path: Path) -> bool:
    """Whether FluidSynth's 16-bit output hit full scale (its float mix was clipped)."""
    x, _ = _read_pcm16(path)
    return bool(x.size) and int(np.abs(x.astype(np.int32)).max()) >= 32767


def render_wav(
    midi: Path,
    wav: Path,
    *,
    soundfont: str | None = None,
    instruments: bool = True,
    performer: int = PERFORMER_PROGRAM,
    agent: int = AGENT_PROGRAM,
    timeout: float = 120.0,
    peak_dbfs: float = PEAK_DBFS,
    pre_roll_beats: float = PRE_ROLL_BEATS,
) -> float:
    """Render ``midi`` to ``wav`` (44.1 kHz, 16-bit), its peak at ``peak_dbfs``, starting ``pre_roll_beats``
    before the first note; returns its RMS. :class:`RenderUnavailableError` when FluidSynth or the soundfont
    is missing, :class:`RenderError` when the rendering fails or is silent."""
    exe = find_fluidsynth()
    sf2 = find_soundfont(soundfont)
    if not midi.is_file():
        raise RenderError(f"no such MIDI file: {midi}")
    if not has_notes(midi):
        raise RenderError(f"no notes in {midi}: nothing to render")
    wav.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="liveagent-render-") as tmp:
        src = midi
        if instruments:
            src = with_instruments(midi, Path(tmp) / "instruments.mid", performer=performer, agent=agent)
        for gain in GAINS:
            _fluidsynth(exe, sf2, src, wav, gain, timeout)
            if not _clipped(wav):
                break
            log.info("rendering at gain %g clipped: again at a lower gain", gain)
    peak = wav_peak(wav)
    if peak < SILENCE_PEAK:
        raise RenderError(f"{wav} is silent (peak {peak:.2e}): did the soundfont {sf2} load?")
    finish_wav(wav, cut_s=first_note_lead_in_s(midi, pre_roll_beats), peak_dbfs=peak_dbfs)
    rms = wav_rms(wav)
    log.info("rendered %s -> %s (RMS %.3f)", midi, wav, rms)
    return rms


def _fluidsynth(exe: str, sf2: Path, src: Path, wav: Path, gain: float, timeout: float) -> None:
    """One FluidSynth run (fast render to a file, no shell, no MIDI/audio drivers)."""
    cmd = [exe, "-ni", "-g", f"{gain:g}", "-F", str(wav), "-r", str(SAMPLE_RATE), str(sf2), str(src)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise RenderError(f"fluidsynth did not finish within {timeout:g} s") from e
    if proc.returncode != 0 or not wav.is_file():
        raise RenderError(f"fluidsynth failed (status {proc.returncode}): {proc.stderr.strip()[-500:]}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("midi", type=Path, help="a MIDI file: a demo's duet.mid or a recorded session")
    parser.add_argument("-o", "--out", type=Path, default=None, help="the WAV file (default: FILE.wav)")
    parser.add_argument("--soundfont", default=None, help="a General MIDI .sf2 (default: the system's)")
    parser.add_argument(
        "--performer-program", type=int, default=PERFORMER_PROGRAM, help="GM program 0..127 (default: piano)"
    )
    parser.add_argument(
        "--agent-program", type=int, default=AGENT_PROGRAM, help="GM program 0..127 (default: cello)"
    )
    parser.add_argument(
        "--keep-programs", action="store_true", help="render the file's own programs (no instrument change)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds FluidSynth may take")


def run(args: argparse.Namespace) -> int:
    for p in (args.performer_program, args.agent_program):
        if not 0 <= p <= 127:
            print(f"liveagent render: error: programs are 0..127, got {p}", file=sys.stderr)
            return 2
    out = args.out or args.midi.with_suffix(".wav")
    try:
        rms = render_wav(
            args.midi,
            out,
            soundfont=args.soundfont,
            instruments=not args.keep_programs,
            performer=args.performer_program,
            agent=args.agent_program,
            timeout=args.timeout,
        )
    except (RenderUnavailableError, RenderError) as e:
        print(f"liveagent render: error: {e}", file=sys.stderr)
        return 2
    print(f"sound:      {out}  (RMS {rms:.3f})")
    return 0
