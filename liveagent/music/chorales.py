"""Bach chorales from music21's offline corpus, as duets on the grid, parsed once and cached.

music21 ships 371 four-part chorales (``music21.corpus.chorales.Iterator``), no network needed. Parsing them
all costs tens of seconds, so the four SATB lines of every chorale are parsed once (in worker processes),
quantized to the grid and stored in a small versioned cache (``.npz`` for the token lines, ``.json`` for
the metadata; the grid, the format version and music21's version are in the file name's key). Any
performer/accompaniment pair is then cut from the cache in milliseconds.

Choices, and why:

- Quantization: onset and end of every note go to the nearest step. Onsets that were *not* on the grid
  (triplets, 32nd notes at 4 steps per beat) are counted per chorale and reported by name, never hidden.
- Pickups (anacrusis): the line is padded with rests so the first full bar starts on a bar line of the
  chorale's own metre; the policy's bar position then stays on the downbeats.
- Split: by BWV number (``bwv153.1`` and ``bwv153.5`` share BWV 153), from a SHA-256 of that number, so
  the split is the same on every machine and run, and a chorale's other harmonizations never leak across.
- music21 is imported inside functions only: importing this module stays cheap, and the cache path needs
  no music21 at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from liveagent.music.piece import Piece
from liveagent.music.theory import Key, key_of_lines
from liveagent.music.tokens import ONSET_BASE, Grid, Note, TokenArray, notes_to_tokens, sounding_pitches

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
"""Bump when the parsed content changes (quantization, padding, fields): old cache files are then ignored."""
VOICES = ("soprano", "alto", "tenor", "bass")
SPLITS = ("train", "valid", "test")
Split = Literal["train", "valid", "test"]
SPLIT_PERCENT = (80, 10, 10)
CHORALE_BPM = 80.0
"""Chorales carry no tempo; this is the tempo their pieces are given (a calm chorale pace)."""
CACHE_ENV = "LIVEAGENT_CACHE_DIR"

_VOICE_ALIASES = {
    "soprano": ("soprano", "s.", "s", "sopran", "cantus"),
    "alto": ("alto", "a.", "a", "alt"),
    "tenor": ("tenor", "t.", "t"),
    "bass": ("bass", "b.", "b", "basso", "bassus"),
}


def cache_dir() -> Path:
    """``$LIVEAGENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/liveagent``, else ``~/.cache/liveagent``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "liveagent"


def bwv_number(name: str) -> str:
    """``'bach/bwv153.1' -> '153'``; ``'bwv248.12-2' -> '248'`` (the work, not the movement)."""
    stem = name.rsplit("/", 1)[-1].lower()
    if stem.startswith("bwv"):
        stem = stem[3:]
    number = stem.split(".", 1)[0].split("-", 1)[0]
    return number.strip() or stem


def split_of(name: str) -> Split:
    """The split of a chorale: a stable hash of its BWV number, 80/10/10 train/valid/test."""
    digest = hashlib.sha256(f"bwv{bwv_number(name)}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    if bucket < SPLIT_PERCENT[0]:
        return "train"
    if bucket < SPLIT_PERCENT[0] + SPLIT_PERCENT[1]:
        return "valid"
    return "test"


def _voice_of(label: str) -> str | None:
    low = label.strip().lower()
    for voice, aliases in _VOICE_ALIASES.items():
        if low in aliases or low.startswith(voice):
            return voice
    return None


def _on_grid(x: Fraction, tol: Fraction = Fraction(1, 1000)) -> bool:
    return abs(x - round(x)) <= tol


def corpus_names() -> list[str]:
    """The chorale names of music21's offline corpus (``'bach/bwv269'`` ...), in music21's order."""
    from music21 import corpus  # lazy: music21 is a training-time dependency

    return [str(n) for n in corpus.chorales.Iterator(returnType="filename")]


def parse_chorale(corpus_name: str, steps_per_beat: int) -> dict[str, Any]:
    """Parse one chorale into its four voices on the grid (runs in a worker process).

    Returns plain data (picklable, JSON-friendly apart from the token arrays): ``voices`` maps each found
    SATB voice to its uint8 token line; ``off_grid`` counts onsets per voice that were not on the grid.
    """
    from music21 import corpus  # lazy

    out: dict[str, Any] = {"corpus_name": corpus_name, "name": corpus_name.rsplit("/", 1)[-1]}
    try:
        score = corpus.parse(corpus_name)
    except Exception as e:  # music21 raises many types on a bad file: report, don't crash
        out["error"] = f"parse error: {type(e).__name__}: {e}"
        return out
    title = getattr(score.metadata, "title", None) if score.metadata is not None else None
    out["title"] = str(title) if title else ""
    parts: dict[str, Any] = {}
    for part in score.parts:
        for label in (part.id, part.partName):
            voice = _voice_of(str(label)) if label else None
            if voice and voice not in parts:
                parts[voice] = part
                break
    if len(parts) < len(VOICES) and len(score.parts) == len(VOICES):
        # Humdrum chorales name their parts "spine_N": four unnamed parts are S, A, T, B top down.
        parts = dict(zip(VOICES, score.parts, strict=True))
        out["voices_by_position"] = True
    spb = Fraction(steps_per_beat)
    # Pickup: the first measure is shorter than the bar; pad so the first full bar starts on a bar line.
    pad_q = Fraction(0)
    ts = "4/4"
    ref = next(iter(parts.values()), None)
    if ref is not None:
        measures = ref.getElementsByClass("Measure")
        if len(measures) > 0:
            m0 = measures[0]
            bar_q = Fraction(m0.barDuration.quarterLength)
            got_q = Fraction(m0.duration.quarterLength)
            if 0 < got_q < bar_q:
                pad_q = bar_q - got_q
            sig = m0.timeSignature or ref.recurse().getElementsByClass("TimeSignature").first()
            if sig is not None:
                ts = str(sig.ratioString)
    out["time_signature"] = ts
    out["pad_steps"] = int(pad_q * spb)
    voices: dict[str, list[Note]] = {}
    off_grid: dict[str, int] = {}
    n_steps = 0
    for voice, part in parts.items():
        notes: list[Note] = []
        off = 0
        for n in part.flatten().stripTies().notes:
            ql = Fraction(n.quarterLength)
            if ql <= 0:  # grace notes take no time on the grid
                continue
            start = (Fraction(n.offset) + pad_q) * spb
            end = start + ql * spb
            off += not _on_grid(start)
            first = round(start)
            length = max(1, round(end) - first)
            pitches = [p.midi for p in n.pitches] if n.isChord else [n.pitch.midi]
            for pitch in pitches:
                notes.append(Note(first, length, int(pitch)))
            n_steps = max(n_steps, first + length)
        voices[voice] = notes
        off_grid[voice] = off
    out["n_steps"] = n_steps
    lines = {v: notes_to_tokens(ns, n_steps) for v, ns in voices.items()}
    out["voices"] = {v: line.astype(np.uint8) for v, line in lines.items()}
    # The key from all four voices (more evidence than the duet), estimated once here and cached.
    key = key_of_lines(*(sounding_pitches(line) for line in lines.values()))
    out["key"] = [key.tonic, key.mode]
    out["off_grid"] = off_grid
    return out


@dataclass(frozen=True)
class SkippedChorale:
    name: str
    reason: str


@dataclass
class ChoraleCorpus:
    """Chorale duets on one grid, with what was skipped or is off the grid, and the split by BWV."""

    pieces: list[Piece]
    skipped: list[SkippedChorale] = field(default_factory=list)
    off_grid: dict[str, int] = field(default_factory=dict)
    """Chorale name -> onsets of the two chosen voices that were off the grid (included, quantized)."""
    performer: str = "soprano"
    accompaniment: str = "bass"
    grid: Grid = field(default_factory=Grid)
    cache_path: Path | None = None
    from_cache: bool = False
    seconds: float = 0.0
    """Wall time of the load (parsing, or reading the cache)."""

    def split(self, name: str) -> list[Piece]:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return [p for p in self.pieces if split_of(p.name) == name]

    def split_sizes(self) -> dict[str, int]:
        return {s: len(self.split(s)) for s in SPLITS}

    def skip_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return counts

    def summary(self) -> str:
        sizes = ", ".join(f"{k} {v}" for k, v in self.split_sizes().items())
        return (
            f"{len(self.pieces)} chorales {self.performer}->{self.accompaniment} ({sizes}); "
            f"skipped {len(self.skipped)} {self.skip_counts() or ''}; off-grid {len(self.off_grid)}; "
            f"{'cache' if self.from_cache else 'parsed'} in {self.seconds:.2f} s"
        )


# --- the cache ------------------------------------------------------------------------------------------


def _music21_version() -> str:
    try:
        from importlib.metadata import version

        return version("music21")
    except Exception:  # metadata lookups fail in odd installs: the key just says "unknown"
        return "unknown"


def _cache_key(grid: Grid, only: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "steps_per_beat": grid.steps_per_beat,
        "beats_per_bar": grid.beats_per_bar,
        "music21": _music21_version(),
        "only": sorted(only) if only is not None else None,
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    stem = f"chorales-v{FORMAT_VERSION}-spb{grid.steps_per_beat}-bpb{grid.beats_per_bar}-{digest}"
    return stem, params


def _save_cache(base: Path, params: dict[str, Any], records: list[dict[str, Any]], seconds: float) -> None:
    """Write ``base.npz`` then ``base.json`` (the json is the commit marker), each atomically."""
    base.parent.mkdir(parents=True, exist_ok=True)
    ok = [r for r in records if "error" not in r]
    arrays: dict[str, np.ndarray] = {}
    offsets = np.zeros(len(ok) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([r["n_steps"] for r in ok])
    arrays["offsets"] = offsets
    for v in VOICES:
        arrays[f"has_{v}"] = np.array([v in r["voices"] for r in ok], dtype=bool)
        flat = np.zeros(int(offsets[-1]), dtype=np.uint8)
        for i, r in enumerate(ok):
            if v in r["voices"]:
                flat[offsets[i] : offsets[i + 1]] = r["voices"][v]
        arrays[f"tokens_{v}"] = flat
    meta = {
        "params": params,
        "parse_seconds": round(seconds, 3),
        "chorales": [{k: r[k] for k in r if k != "voices"} for r in ok],
        "failed": [{"name": r["name"], "reason": r["error"]} for r in records if "error" in r],
    }
    tmp_npz = base.with_name(base.name + f".{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp_npz, **arrays)  # type: ignore[arg-type]
    os.replace(tmp_npz, base.with_suffix(".npz"))
    tmp_json = base.with_name(base.name + f".{os.getpid()}.tmp.json")
    tmp_json.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp_json, base.with_suffix(".json"))


def _load_cache(base: Path, params: dict[str, Any]) -> list[dict[str, Any]] | None:
    jpath, npath = base.with_suffix(".json"), base.with_suffix(".npz")
    if not (jpath.is_file() and npath.is_file()):
        return None
    try:
        meta = json.loads(jpath.read_text(encoding="utf-8"))
        if meta.get("params") != params:
            return None
        with np.load(npath) as z:
            offsets = z["offsets"]
            flat = {v: z[f"tokens_{v}"] for v in VOICES}
            has = {v: z[f"has_{v}"] for v in VOICES}
        records: list[dict[str, Any]] = []
        for i, r in enumerate(meta["chorales"]):
            rec = dict(r)
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            rec["voices"] = {v: flat[v][lo:hi] for v in VOICES if has[v][i]}
            records.append(rec)
        records += [{"name": f["name"], "error": f["reason"]} for f in meta["failed"]]
        return records
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        log.warning("chorale cache %s is unreadable (%s); parsing again", base, e)
        return None


# --- parsing all --------------------------------------------------------------------------------------


def _parse_all(names: list[str], steps_per_beat: int, workers: int, progress: bool) -> list[dict[str, Any]]:
    parse: Callable[[str, int], dict[str, Any]] = parse_chorale
    results: list[dict[str, Any]] = []
    bar: Any = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("parsing Bach chorales (once; cached after)", total=len(names))

    def advance() -> None:
        if bar is not None:
            bar.advance(task)

    try:
        if workers <= 1 or len(names) < 4:
            for n in names:
                results.append(parse(n, steps_per_beat))
                advance()
        else:
            import multiprocessing
            import threading
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool

            # fork is fast and needs no `if __name__ == "__main__"` guard in the caller's script, but is
            # unsafe once the parent runs other threads (torch, onnxruntime, the engine): spawn then.
            method = "fork" if threading.active_count() == 1 else "spawn"
            ctx = multiprocessing.get_context(method)
            try:
                with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                    for r in pool.map(parse_chorale, names, [steps_per_beat] * len(names), chunksize=8):
                        results.append(r)
                        advance()
            except (BrokenProcessPool, OSError) as e:
                log.warning("parallel chorale parsing failed (%s); parsing the rest in this process", e)
                for n in names[len(results) :]:
                    results.append(parse(n, steps_per_beat))
                    advance()
    finally:
        if bar is not None:
            bar.stop()
    return results


def _records(
    grid: Grid, only: Sequence[str] | None, workers: int | None, progress: bool
) -> tuple[list[dict[str, Any]], Path, bool]:
    if only is not None:
        only = sorted({n if "/" in n else f"bach/{n}" for n in only})
    stem, params = _cache_key(grid, only)
    base = cache_dir() / stem
    records = _load_cache(base, params)
    if records is not None:
        return records, base, True
    names = list(only) if only is not None else corpus_names()
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    t0 = time.perf_counter()
    records = _parse_all(names, grid.steps_per_beat, n_workers, progress)
    seconds = time.perf_counter() - t0
    log.info("parsed %d chorales in %.1f s (%d workers)", len(names), seconds, n_workers)
    try:
        _save_cache(base, params, records, seconds)
    except OSError as e:  # a read-only home must not stop training; it only costs the parse next time
        log.warning("could not write the chorale cache %s: %s", base, e)
    return records, base, False


def _check_voice(voice: str) -> str:
    v = voice.strip().lower()
    if v not in VOICES:
        raise ValueError(f"voice must be one of {VOICES}, got {voice!r}")
    return v


def load_chorales(
    performer: str = "soprano",
    accompaniment: str = "bass",
    grid: Grid | None = None,
    *,
    progress: bool = False,
    only: Sequence[str] | None = None,
    workers: int | None = None,
    drop_off_grid: bool = False,
) -> ChoraleCorpus:
    """The chorales as duets ``performer -> accompaniment`` (any two SATB voices) on ``grid``.

    The first call parses (in ``workers`` processes, default up to 2) and caches; later calls with the same
    grid read the cache (no music21 import). ``only`` restricts to some chorales (``'bwv269'`` or
    ``'bach/bwv269'``; a separate cache entry). Chorales with off-grid onsets are included quantized and
    reported in ``off_grid``, or skipped if ``drop_off_grid``.
    """
    grid = grid or Grid()
    perf, acc = _check_voice(performer), _check_voice(accompaniment)
    if perf == acc:
        raise ValueError(f"performer and accompaniment must be different voices, got {perf!r} twice")
    t0 = time.perf_counter()
    records, base, from_cache = _records(grid, only, workers, progress)
    corpus = ChoraleCorpus(
        pieces=[], performer=perf, accompaniment=acc, grid=grid, cache_path=base, from_cache=from_cache
    )
    seen: set[str] = set()
    for r in records:
        name = str(r["name"])
        if name in seen:  # music21's Riemenschneider list holds a few chorales twice
            corpus.skipped.append(SkippedChorale(name, "duplicate"))
            continue
        seen.add(name)
        if "error" in r:
            corpus.skipped.append(SkippedChorale(name, str(r["error"])))
            continue
        voices: dict[str, np.ndarray] = r["voices"]
        missing = [v for v in (perf, acc) if v not in voices]
        if missing:
            corpus.skipped.append(SkippedChorale(name, f"no {missing[0]} part"))
            continue
        lines: dict[str, TokenArray] = {v: np.asarray(t, dtype=np.int64) for v, t in voices.items()}
        if not all((lines[v] >= ONSET_BASE).any() for v in (perf, acc)):
            corpus.skipped.append(SkippedChorale(name, "empty part"))
            continue
        off = int(r["off_grid"].get(perf, 0)) + int(r["off_grid"].get(acc, 0))
        if off:
            if drop_off_grid:
                corpus.skipped.append(SkippedChorale(name, "off the grid"))
                continue
            corpus.off_grid[name] = off
        if "key" in r:
            key = Key(int(r["key"][0]), r["key"][1])
        else:
            key = key_of_lines(*(sounding_pitches(line) for line in lines.values()))
        corpus.pieces.append(
            Piece(
                name=name,
                performer=lines[perf],
                accompaniment=lines[acc],
                grid=grid,
                key=key,
                bpm=CHORALE_BPM,
                voices=lines,
            )
        )
    corpus.seconds = time.perf_counter() - t0
    log.info("%s", corpus.summary())
    return corpus


def chorale_split(
    split: str,
    performer: str = "soprano",
    accompaniment: str = "bass",
    grid: Grid | None = None,
    *,
    progress: bool = False,
) -> list[Piece]:
    """The pieces of one split (``train``, ``valid``, ``test``) of :func:`load_chorales`."""
    return load_chorales(performer, accompaniment, grid, progress=progress).split(split)


def split_names(names: Iterable[str]) -> dict[str, list[str]]:
    """Group chorale names by split (no parsing): for reports and tests."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for n in names:
        out[split_of(n)].append(n)
    return out
