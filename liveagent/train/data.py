"""Supervised data for the online accompanist: (observation at t, real accompaniment token at t).

Observations come from THE shared builder (:func:`liveagent.music.features.build_observation`) with the
real accompaniment as the agent's own past (teacher forcing) and, in anticipate mode, the performer only
up to t-1: exactly what the environment and the live engine feed the policy, so training and playing can
never disagree.

Transposition: windows are built once per piece in its written key into preallocated ``uint8`` arrays,
and each batch is moved to a random key that keeps the accompaniment inside the corpus's range
(:func:`transpose_windows`). Transposing a window equals windowing the transposed piece (REST and HOLD do
not move; a test checks it), and this keeps 12 keys of the corpus in ~1/12 of the memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from liveagent.music.features import (
    Mode,
    ObservationBuffers,
    build_observation,
    hears_current_step,
    hide_current_onsets,
)
from liveagent.music.piece import Piece
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, Grid, Note, notes_to_tokens, pitch_range

log = logging.getLogger(__name__)


CORPORA = ("chorales", "toy", "midi")
CORPUS_PARTS = {"chorales": ("soprano", "bass"), "toy": ("soprano", "bass"), "midi": ("index:0", "index:1")}
"""Each corpus's default (performer, accompaniment) when the recipe leaves them out."""


@dataclass
class DataConfig:
    """Which corpus, which parts, which keys ( ``[data]`` table of a recipe).

    Validated here, once, when the recipe is read (:meth:`__post_init__`): a wrong key fails before any
    file is opened, with a message that names the key.
    """

    corpus: str = "chorales"
    """``chorales`` (Bach chorales, liveagent.music.chorales), ``toy`` (generated, for tests) or ``midi``
    (the user's folder ``path``, liveagent.music.midi_corpus)."""
    performer: str = ""
    """The part the performer plays: a chorale voice (default ``soprano``) or, for ``midi``, a track
    selector ``name:Lead``, ``index:0`` (default), ``track:1`` or ``channel:0``."""
    accompaniment: str = ""
    """The part the policy learns to play: a chorale voice (default ``bass``) or, for ``midi``, a track
    selector (default ``index:1``)."""
    path: str = ""
    """``midi`` only: the folder of ``.mid`` files (searched recursively; ``~`` expanded; relative to the
    current directory)."""
    accompaniment_chords: str = "lowest"
    """``midi`` only: how chords in the accompaniment's part become one line: ``lowest`` (a bass line) or
    ``highest`` (a counter-melody). The performer's chords are always reduced to their highest note."""
    transpose: bool = True
    """Augment with every shift in ``-max_shift..max_shift`` that keeps the accompaniment in range."""
    max_shift: int = 6
    """Largest transposition in semitones (6 covers all 12 keys)."""
    pitch_margin: int = 0
    """Semitones added on each side of the corpus's accompaniment range to allow as transposed range."""
    limit_pieces: int = 0
    """Use only the first N pieces of each split (0 = all): for quick runs and tests."""
    toy_pieces: int = 24
    """Number of generated pieces per split when ``corpus = "toy"``."""

    def __post_init__(self) -> None:
        if self.corpus not in CORPORA:
            raise ValueError(f"[data] corpus = {self.corpus!r}: expected one of {', '.join(CORPORA)}")
        perf, acc = CORPUS_PARTS[self.corpus]
        self.performer = self.performer or perf
        self.accompaniment = self.accompaniment or acc
        if self.corpus == "midi":
            self._check_midi()
        else:
            for key in ("path",):
                if getattr(self, key):
                    raise ValueError(f'[data] {key} is for corpus = "midi", not {self.corpus!r}')
        if self.max_shift < 0:
            raise ValueError(f"[data] max_shift must be >= 0, got {self.max_shift}")

    def _check_midi(self) -> None:
        from liveagent.music.midi_corpus import CHORD_RULES, TrackSelector

        if not self.path:
            raise ValueError('[data] corpus = "midi" needs path = "FOLDER" (the folder of .mid files)')
        sels = {}
        for key in ("performer", "accompaniment"):
            try:
                sels[key] = TrackSelector.parse(str(getattr(self, key)))
            except ValueError as e:
                raise ValueError(
                    f"[data] {key} = {getattr(self, key)!r}: {e}; use name:TRACK, index:N, track:N or "
                    "channel:N (0..15)"
                ) from None
        if sels["performer"] == sels["accompaniment"]:
            raise ValueError(f"[data] performer and accompaniment both select {sels['performer']}")
        if self.accompaniment_chords not in CHORD_RULES:
            raise ValueError(
                f"[data] accompaniment_chords = {self.accompaniment_chords!r}: expected one of {CHORD_RULES}"
            )

    @property
    def folder(self) -> Path:
        """``path`` with ``~`` expanded."""
        return Path(self.path).expanduser()


def toy_pieces(n: int, grid: Grid | None = None, seed: int = 0, bars: int = 8) -> list[Piece]:
    """Hand-made duets: a diatonic melody in quarter/eighth notes over a bass that follows it.

    The bass plays, on every beat, the root of a C-major triad that contains the melody's note at the
    previous step (so an anticipating accompanist can learn it), a simple, fully learnable rule.
    """
    grid = grid or Grid()
    rng = np.random.default_rng(seed)
    scale = [0, 2, 4, 5, 7, 9, 11]
    triads = {0: 0, 4: 0, 7: 0, 5: 5, 9: 5, 2: 7, 11: 7}  # melody pitch class -> root pc (I, IV, V)
    spb = grid.steps_per_beat
    n_steps = bars * grid.steps_per_bar
    pieces = []
    for i in range(n):
        notes: list[Note] = []
        degree = int(rng.integers(0, 7))
        t = 0
        while t < n_steps:
            length = spb if rng.random() < 0.7 else max(1, spb // 2)
            degree = int(np.clip(degree + rng.choice([-2, -1, 1, 2]), 0, 13))
            pitch = 72 + 12 * (degree // 7) + scale[degree % 7]
            notes.append(Note(t, min(length, n_steps - t), pitch))
            t += length
        melody = notes_to_tokens(notes, n_steps)
        sounding = np.full(n_steps, -1)
        for note in notes:
            sounding[note.start : note.start + note.length] = note.pitch
        bass_notes = []
        for beat_start in range(0, n_steps, spb):
            ref = sounding[max(beat_start - 1, 0)]
            root = triads[int(ref) % 12] if ref >= 0 else 0
            bass_notes.append(Note(beat_start, spb, 48 + root))
        bass = notes_to_tokens(bass_notes, n_steps)
        pieces.append(Piece(name=f"toy{seed}_{i}", performer=melody, accompaniment=bass, grid=grid))
    return pieces


def load_pieces(config: DataConfig, split: str, grid: Grid | None = None) -> list[Piece]:
    """The pieces of one split (``train``, ``valid`` or ``test``) in their written keys."""
    grid = grid or Grid()
    if config.corpus == "toy":
        seed = {"train": 0, "valid": 1, "test": 2}.get(split, 3)
        pieces = toy_pieces(config.toy_pieces, grid, seed=seed)
    elif config.corpus == "chorales":
        from liveagent.music.chorales import chorale_split

        pieces = chorale_split(
            split, performer=config.performer, accompaniment=config.accompaniment, grid=grid
        )
    elif config.corpus == "midi":
        from liveagent.music.midi_corpus import midi_split

        pieces, _ = midi_split(
            config.folder, split, config.performer, config.accompaniment, grid,
            accompaniment_chords=config.accompaniment_chords, progress=True,  # type: ignore[arg-type]
        )  # fmt: skip
    else:
        raise ValueError(f"unknown corpus {config.corpus!r} ({', '.join(CORPORA)})")
    if config.limit_pieces:
        pieces = pieces[: config.limit_pieces]
    if not pieces:
        raise ValueError(f"corpus {config.corpus!r} split {split!r} is empty")
    return pieces


def accompaniment_range(pieces: list[Piece]) -> tuple[int, int]:
    """Lowest and highest accompaniment pitch over ``pieces`` (the part's range)."""
    spans = [r for r in (pitch_range(p.accompaniment) for p in pieces) if r is not None]
    if not spans:
        raise ValueError("no accompaniment notes in the corpus")
    return min(s[0] for s in spans), max(s[1] for s in spans)


def allowed_shifts(piece: Piece, pitch_min: int, pitch_max: int, max_shift: int) -> tuple[int, int]:
    """The contiguous shift range ``lo..hi`` (includes 0) keeping the accompaniment in ``pitch_min..max``
    and the performer inside MIDI."""
    acc = pitch_range(piece.accompaniment)
    perf = pitch_range(piece.performer)
    lo, hi = -max_shift, max_shift
    if acc is not None:
        lo, hi = max(lo, pitch_min - acc[0]), min(hi, pitch_max - acc[1])
    if perf is not None:
        lo, hi = max(lo, -perf[0]), min(hi, 127 - perf[1])
    return min(lo, 0), max(hi, 0)


@dataclass
class WindowSet:
    """Every (observation, target) pair of a set of pieces, in the pieces' written keys.

    Tokens are stored as ``uint8`` (the vocabulary has 130 tokens) to keep the whole corpus in memory.
    """

    performer: npt.NDArray[np.uint8]
    """[N, W] the performer's window."""
    agent: npt.NDArray[np.uint8]
    """[N, W] the accompaniment's past (teacher forcing)."""
    position: npt.NDArray[np.int64]
    """[N] step in bar."""
    target: npt.NDArray[np.uint8]
    """[N] the real accompaniment token at t."""
    perf_next: npt.NDArray[np.uint8]
    """[N] the performer's next unseen token: at t (anticipate) or t+1 (follow/react; REST past the end)."""
    shift_lo: npt.NDArray[np.int8]
    """[N] lowest allowed transposition of the sample's piece."""
    shift_hi: npt.NDArray[np.int8]
    """[N] highest allowed transposition."""

    def __len__(self) -> int:
        return int(self.target.shape[0])


def build_windows(
    pieces: list[Piece],
    *,
    window: int,
    mode: Mode,
    pitch_min: int,
    pitch_max: int,
    max_shift: int = 0,
) -> WindowSet:
    """Observations at every step of every piece via the shared builder, in preallocated arrays."""
    total = sum(p.n_steps for p in pieces)
    ws = WindowSet(
        performer=np.zeros((total, window), dtype=np.uint8),
        agent=np.zeros((total, window), dtype=np.uint8),
        position=np.zeros(total, dtype=np.int64),
        target=np.zeros(total, dtype=np.uint8),
        perf_next=np.zeros(total, dtype=np.uint8),
        shift_lo=np.zeros(total, dtype=np.int8),
        shift_hi=np.zeros(total, dtype=np.int8),
    )
    biggest = max(p.n_steps for p in pieces)
    buf = ObservationBuffers.allocate(biggest, window)
    i = 0
    for p in pieces:
        n = p.n_steps
        obs = ObservationBuffers(buf.performer[:n], buf.agent[:n], buf.position[:n])
        steps = np.arange(n, dtype=np.int64)
        perf = np.broadcast_to(p.performer, (n, n))
        acc = np.broadcast_to(p.accompaniment, (n, n))
        build_observation(perf, acc, steps, window=window, steps_per_bar=p.grid.steps_per_bar, mode=mode,
                          out=obs)  # fmt: skip
        ws.performer[i : i + n] = obs.performer
        ws.agent[i : i + n] = obs.agent
        ws.position[i : i + n] = obs.position
        ws.target[i : i + n] = p.accompaniment
        ahead = 1 if hears_current_step(mode) else 0
        ws.perf_next[i : i + n] = np.concatenate((p.performer[ahead:], np.full(ahead, REST)))
        lo, hi = allowed_shifts(p, pitch_min, pitch_max, max_shift)
        ws.shift_lo[i : i + n] = lo
        ws.shift_hi[i : i + n] = hi
        i += n
    return ws


def transpose_windows(tokens: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move every ONSET token of ``tokens`` ([N, ...]) by ``shift`` ([N]) semitones; REST/HOLD stay."""
    shape = (-1,) + (1,) * (tokens.dim() - 1)
    return torch.where(tokens >= ONSET_BASE, tokens + shift.view(shape), tokens)


def shift_past(
    performer: npt.NDArray[np.int64],
    agent: npt.NDArray[np.int64],
    rng: np.random.Generator,
    prob: float,
    recent: int,
) -> None:
    """In place: in a ``prob`` share of rows, move every onset before a random cut among the last
    ``recent`` steps by a random 1-6 semitones either way (a key change the windows have just crossed).
    Onsets that would leave MIDI stay where they are."""
    shift_rows_past((performer, agent), rng, prob, recent)


def shift_rows_past(
    rows: Sequence[npt.NDArray[np.int64]], rng: np.random.Generator, prob: float, recent: int
) -> None:
    """:func:`shift_past` for any token arrays ``[N, ..., W]`` of the same samples (a band: the soprano's
    ``[N, W]`` and the voices' ``[N, V, W]``): one cut and one interval per sample, shared by every array.
    The last column (the decided step) is never moved."""
    n, w = rows[0].shape[0], rows[0].shape[-1]
    hit = np.less(rng.random(n), prob)
    if not hit.any():
        return
    cut = rng.integers(max(1, w - recent), w, size=n)
    by = rng.choice(np.array([-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6]), size=n)
    old = hit[:, None] & (np.arange(w)[None, :] < cut[:, None])
    for arr in rows:
        inner = (1,) * (arr.ndim - 2)
        moved = arr + by.reshape(n, *inner, 1)
        sel = old.reshape(n, *inner, w)
        ok = sel & (arr >= ONSET_BASE) & (moved >= ONSET_BASE) & (moved < ONSET_BASE + 128)
        np.copyto(arr, moved, where=ok)


@dataclass
class TrainBatch:
    """One batch of windows as int64 tensors, all moved to the same random keys."""

    performer: torch.Tensor
    agent: torch.Tensor
    position: torch.Tensor
    target: torch.Tensor
    perf_next: torch.Tensor
    """The performer's next unseen token (the auxiliary head's target)."""


def sample_training_batch(
    ws: WindowSet,
    index: npt.NDArray[np.int64],
    *,
    transpose: bool,
    rng: np.random.Generator,
    agent_noise: float = 0.0,
    late_onset_prob: float = 0.0,
    key_change_prob: float = 0.0,
    key_change_steps: int = 32,
) -> TrainBatch:
    """The windows of rows ``index``, randomly transposed, with the training noise applied.

    ``agent_noise`` replaces that fraction of the agent's past onsets with a neighbouring pitch (or a
    HOLD/REST swap): the policy learns to recover from its own slips instead of trusting a perfect past.
    ``late_onset_prob`` (follow/react windows): that share of the performer's onsets at the decided step
    are not yet heard (:func:`~liveagent.music.features.hide_current_onsets`), as on stage when the
    performer is later than the follow window. ``key_change_prob``: that share of windows had their past
    in another key: everything before a cut in the last ``key_change_steps`` steps is moved by 1-6
    semitones, so the policy learns to follow a performer who has just changed key (and to trust the
    recent bars over the older ones).
    """
    perf_np = ws.performer[index].astype(np.int64)
    agent_np = ws.agent[index].astype(np.int64)
    if key_change_prob > 0.0:
        shift_past(perf_np, agent_np, rng, key_change_prob, key_change_steps)
    if late_onset_prob > 0.0:
        hide_current_onsets(perf_np, rng.random(len(index)) < late_onset_prob)
    perf = torch.from_numpy(perf_np)
    agent = torch.from_numpy(agent_np)
    pos = torch.from_numpy(ws.position[index])
    target = torch.from_numpy(ws.target[index].astype(np.int64))
    perf_next = torch.from_numpy(ws.perf_next[index].astype(np.int64))
    if transpose:
        lo = ws.shift_lo[index].astype(np.int64)
        hi = ws.shift_hi[index].astype(np.int64)
        shift = torch.from_numpy(lo + np.floor(rng.random(len(index)) * (hi - lo + 1)).astype(np.int64))
        perf = transpose_windows(perf, shift)
        agent = transpose_windows(agent, shift)
        target = transpose_windows(target, shift)
        perf_next = transpose_windows(perf_next, shift)
    if agent_noise > 0.0:
        hit = torch.from_numpy(rng.random(agent.shape) < agent_noise)
        onsets = agent >= ONSET_BASE
        step = torch.from_numpy(rng.choice(np.array([-2, -1, 1, 2]), size=agent.shape))
        moved = (agent + step).clamp(ONSET_BASE, ONSET_BASE + 127)
        swapped = torch.where(agent == HOLD, torch.full_like(agent, REST), torch.full_like(agent, HOLD))
        noisy = torch.where(onsets, moved, swapped)
        agent = torch.where(hit, noisy, agent)
    return TrainBatch(perf, agent, pos, target, perf_next)


def sample_batch(
    ws: WindowSet,
    index: npt.NDArray[np.int64],
    *,
    transpose: bool,
    rng: np.random.Generator,
    agent_noise: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(performer, agent, position, target)`` of :func:`sample_training_batch`."""
    b = sample_training_batch(ws, index, transpose=transpose, rng=rng, agent_noise=agent_noise)
    return b.performer, b.agent, b.position, b.target
