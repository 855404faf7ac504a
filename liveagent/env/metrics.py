"""Evaluation metrics over complete token lines, aggregated over many pieces into one table row.

Each piece contributes an agent line (what the policy played), the performer's line, the real
accompaniment (Bach's part in the chorale corpus) and the piece's :class:`~liveagent.music.theory.Key`.
:func:`piece_stats` reduces one piece to counts; :func:`aggregate` pools the counts of many pieces into one
row of the eval table (:data:`COLUMNS` names its keys, in table order).

RL Tuner statistics (Jaques et al. 2017, "Sequence Tutor / Tuning Recurrent Neural Networks with
Reinforcement Learning", Table 1; code: magenta ``rl_tuner_eval_metrics.py`` and ``rl_tuner.py``).
RL Tuner's composition is a sequence of 16th-note steps with tokens 0 = note off, 1 = no event (hold),
2+ = note onset: the same layout as our vocabulary (REST, HOLD, ONSET), on the same grid by default, so
the detectors below are its detectors applied to our tokens:

- *notes excessively repeated*: ``detect_repeating_notes``. Scanning back from the note, count earlier
  onsets of the same pitch, passing over holds and rests (which set flags) and stopping at any other
  pitch; the note is excessive when that count exceeds 4 with nothing in between, or 6 when holds or
  rests intervene. Deviation: RL Tuner applied the check to every step (holds and rests included) and
  divided by the number of steps; we check onsets only and divide by the number of notes, because on a
  16th grid its hold rule flags every half note of a chorale bass.
- *notes not in key*: share of notes whose pitch class is outside the key (RL Tuner: C major; here the
  piece's key, minor with raised 6th and 7th as in :class:`Key`). Also per note, not per step.
- *leaps resolved*: ``detect_leap_up_back``. A leap is a move of a fifth (7 semitones) or more from the
  previous note. A later leap back in the opposite direction resolves it only if more than 6 steps
  passed since the leap; stepping gradually back to (or past) the note it leapt from also resolves it; a
  second leap in the same direction is a "double leap". Percent = resolved / (resolved + double),
  exactly as ``get_stat_dict_string`` (unresolved leaps at the end and quick leaps back count in neither).
- *autocorrelation at lags 1, 2, 3*: ``rl_tuner_ops.autocorrelate`` (biased estimate, divided by ``n`` and
  by the variance) of the per-step token sequence, averaged over pieces (``nanmean``). Our onset tokens
  are ``2 + MIDI pitch`` where RL Tuner's were ``2 + pitch - 48``, so values are comparable between our
  policies but not numerically with RL Tuner's paper.
- *compositions with unique max / min note*: share of pieces whose highest (lowest) note is struck once.

Two-voice statistics (against the performer) follow species counterpoint (Fux, *Gradus ad Parnassum*):
consonance with the lower voice taken as the bass (fourth dissonant), and parallel perfect intervals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from liveagent.music.theory import Key, consonant_pair, interval_class
from liveagent.music.tokens import HOLD, NO_PITCH, ONSET_BASE, REST, Grid, sounding_pitches

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

REPEAT_LIMIT_PLAIN = 4
"""RL Tuner: a note is excessive after more than 4 earlier strikes of it with nothing in between."""
REPEAT_LIMIT_BROKEN = 6
"""RL Tuner: ... or after more than 6 when held notes or rests come in between."""
LEAP_SEMITONES = 7
"""RL Tuner: a melodic move of a fifth or more is a leap."""
STEPS_BETWEEN_LEAPS = 6
"""RL Tuner: leaping straight back does not resolve a leap; more than this many steps must pass."""
PARALLEL_MAX_GAP = 4
"""Silent steps (a beat of 16ths) between two simultaneities that still count them as successive."""
AUTOCORR_LAGS = (1, 2, 3)
IOI_MAX = 64
"""Inter-onset intervals longer than this (4 bars of 16ths) are clipped into the last histogram bin."""


def _as_line(tokens: npt.ArrayLike) -> IntArray:
    arr = np.asarray(tokens, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"a token line must be 1-D, got shape {arr.shape}")
    return arr


def onset_pitches(tokens: npt.ArrayLike) -> IntArray:
    """The pitches of the line's onsets, in order."""
    tok = _as_line(tokens)
    return tok[tok >= ONSET_BASE] - ONSET_BASE


def consonance_counts(agent: npt.ArrayLike, performer: npt.ArrayLike) -> tuple[int, int]:
    """(consonant, judged) agent onsets against the performer's note sounding at the same step.

    Onsets where the performer is silent are not judged. The lower of the two voices is taken as the
    bass (:func:`~liveagent.music.theory.consonant_pair`), so a fourth is dissonant either way round.
    """
    ag = _as_line(agent)
    perf = sounding_pitches(_as_line(performer))
    on = (ag >= ONSET_BASE) & (perf != NO_PITCH)
    if not on.any():
        return 0, 0
    ok = consonant_pair(ag[on] - ONSET_BASE, perf[on])
    return int(ok.sum()), int(on.sum())


def time_consonance_counts(agent: npt.ArrayLike, performer: npt.ArrayLike) -> tuple[int, int]:
    """(consonant, judged) steps where both lines sound: consonance weighted by time, as it is heard."""
    ag = sounding_pitches(_as_line(agent))
    perf = sounding_pitches(_as_line(performer))
    both = (ag != NO_PITCH) & (perf != NO_PITCH)
    if not both.any():
        return 0, 0
    return int(consonant_pair(ag[both], perf[both]).sum()), int(both.sum())


def change_consonance_counts(agent: npt.ArrayLike, performer: npt.ArrayLike) -> tuple[int, int]:
    """(consonant, judged) performer onsets against the agent's note sounding at that step.

    Where the melody changes, an anticipating agent chose its note before hearing the new one: this is
    the column that tells anticipation from reaction.
    """
    ag = sounding_pitches(_as_line(agent))
    perf_tok = _as_line(performer)
    judged = (perf_tok >= ONSET_BASE) & (ag != NO_PITCH)
    if not judged.any():
        return 0, 0
    return int(consonant_pair(ag[judged], perf_tok[judged] - ONSET_BASE).sum()), int(judged.sum())


def offbeat_onsets(agent: npt.ArrayLike, steps_per_beat: int) -> int:
    """Agent onsets off the beat (the chorale bass puts about a quarter of its notes there)."""
    ag = _as_line(agent)
    return int(((ag >= ONSET_BASE) & (np.arange(ag.size) % steps_per_beat != 0)).sum())


def off_eighth_onsets(agent: npt.ArrayLike, steps_per_beat: int) -> int:
    """Agent onsets between the eighth notes (the 2nd and 4th sixteenth of a beat; none when a beat has
    fewer than two steps): Bach's chorale basses have almost none. A policy that strikes a note on the
    beat and corrects it a sixteenth later, once it has heard the melody, shows here, not in the off-beat
    share (which counts eighths too)."""
    half = steps_per_beat // 2
    if half < 1:
        return 0
    ag = _as_line(agent)
    return int(((ag >= ONSET_BASE) & (np.arange(ag.size) % half != 0)).sum())


def not_in_key_count(agent: npt.ArrayLike, key: Key) -> int:
    """How many of the line's notes have a pitch class outside ``key``."""
    pcs = onset_pitches(agent) % 12
    return int((~key.mask()[pcs]).sum())


def excessively_repeated(tokens: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Per step: True at onsets that RL Tuner's ``detect_repeating_notes`` calls excessive.

    Linear-time equivalent of its backward scan: the "region" is everything after the last onset of a
    different pitch; it holds ``count`` earlier onsets of the current pitch and the hold/rest flags.
    """
    tok = _as_line(tokens).tolist()
    out = np.zeros(len(tok), dtype=bool)
    run_pitch = -1
    count = 0
    region_held = region_broken = False  # flags over the region before the current step
    gap_held = gap_broken = False  # flags since the most recent onset of any pitch
    for t, x in enumerate(tok):
        if x == HOLD:
            region_held = gap_held = True
        elif x == REST:
            region_broken = gap_broken = True
        else:
            if x == run_pitch:
                limit = REPEAT_LIMIT_BROKEN if (region_held or region_broken) else REPEAT_LIMIT_PLAIN
                out[t] = count > limit
                count += 1
            else:
                run_pitch, count = x, 1
                region_held, region_broken = gap_held, gap_broken
            gap_held = gap_broken = False
    return out


def leap_outcomes(tokens: npt.ArrayLike) -> tuple[int, int]:
    """(resolved, doubled) leaps of the line, by RL Tuner's ``detect_leap_up_back`` state machine."""
    tok = _as_line(tokens).tolist()
    direction = 0  # +1 / -1: an unresolved leap up / down is pending
    leapt_from = 0
    steps_since = 0
    prev_note = NO_PITCH
    resolved = doubled = 0
    for t, x in enumerate(tok):
        if t == 0:  # RL Tuner: nothing to compare the first step with
            if x >= ONSET_BASE:
                prev_note = x - ONSET_BASE
            continue
        if x < ONSET_BASE:
            steps_since += 1
            continue
        note = x - ONSET_BASE
        if prev_note != NO_PITCH and abs(note - prev_note) >= LEAP_SEMITONES:
            leap_dir = 1 if note > prev_note else -1
            if direction != 0:
                if direction != leap_dir:
                    if steps_since > STEPS_BETWEEN_LEAPS:
                        resolved += 1
                    direction = 0
                else:
                    doubled += 1
            else:
                direction, leapt_from = leap_dir, prev_note
            steps_since = 0
        else:
            steps_since += 1
            if (direction == 1 and note <= leapt_from) or (direction == -1 and note >= leapt_from):
                resolved += 1
                direction = 0
        prev_note = note
    return resolved, doubled


def autocorrelation(signal: npt.ArrayLike, lag: int) -> float:
    """RL Tuner's ``autocorrelate``: ``sum(x[lag:] * x[:-lag]) / n / var`` of the centred signal.

    NaN for a constant signal or one not longer than ``lag`` (RL Tuner averages with ``nanmean``).
    """
    s = np.asarray(signal, dtype=np.float64).ravel()
    n = s.size
    if lag < 1:
        raise ValueError(f"lag must be >= 1, got {lag}")
    var = float(s.var()) if n else 0.0
    if n <= lag or var == 0.0:
        return float("nan")
    x = s - s.mean()
    return float((x[lag:] * x[: n - lag]).sum() / n / var)


def unique_extrema(tokens: npt.ArrayLike) -> tuple[bool, bool]:
    """(highest note struck once, lowest note struck once); both False for a line without notes."""
    p = onset_pitches(tokens)
    if p.size == 0:
        return False, False
    return bool((p == p.max()).sum() == 1), bool((p == p.min()).sum() == 1)


def parallel_perfects(agent: npt.ArrayLike, performer: npt.ArrayLike, max_gap: int = PARALLEL_MAX_GAP) -> int:
    """Parallel fifths and octaves (unisons, compound intervals) between the agent and the performer.

    The two-voice texture is read as a chain of simultaneities: the steps where both voices sound and
    the pair of sounding pitches is new (a note starts in either voice, or the pair follows silence).
    Two successive simultaneities form a parallel when both intervals are perfect of the same class
    (fifth-fifth or octave-octave) and both voices move in the same direction (oblique motion, where
    one voice stays, is not parallel). A short silence in between (up to ``max_gap`` steps where a voice
    is silent) does not break the chain: strict counterpoint does not let a rest excuse parallels. A
    longer one (a phrase break) does.
    """
    ag_line = _as_line(agent)
    perf_line = _as_line(performer)
    a = sounding_pitches(ag_line)
    p = sounding_pitches(perf_line)
    both = (a != NO_PITCH) & (p != NO_PITCH)
    new = (ag_line >= ONSET_BASE) | (perf_line >= ONSET_BASE)
    new[1:] |= ~both[:-1]
    idx = np.flatnonzero(both & new)
    if idx.size < 2:
        return 0
    a_s, p_s = a[idx], p[idx]
    ic = interval_class(a_s, p_s)
    perfect = (ic == 0) | (ic == 7)
    da, dp = np.diff(a_s), np.diff(p_s)
    same_dir = (np.sign(da) == np.sign(dp)) & (da != 0)
    silent_before = np.concatenate(([0], np.cumsum(~both)))  # silent steps before each step
    close = (silent_before[idx[1:]] - silent_before[idx[:-1]]) <= max_gap
    par = same_dir & close & perfect[1:] & perfect[:-1] & (ic[1:] == ic[:-1])
    return int(par.sum())


def pitch_class_overlap(agent: npt.ArrayLike, real: npt.ArrayLike) -> float:
    """Sum over pitch classes of the smaller of the two normalized note-count histograms (0..1).

    NaN when either line has no notes.
    """
    ha = np.bincount(onset_pitches(agent) % 12, minlength=12).astype(np.float64)
    hr = np.bincount(onset_pitches(real) % 12, minlength=12).astype(np.float64)
    if ha.sum() == 0 or hr.sum() == 0:
        return float("nan")
    return float(np.minimum(ha / ha.sum(), hr / hr.sum()).sum())


def inter_onset_intervals(tokens: npt.ArrayLike) -> IntArray:
    """Steps between successive onsets of the line (rests in between included)."""
    on = np.flatnonzero(_as_line(tokens) >= ONSET_BASE)
    return np.diff(on).astype(np.int64)


def ioi_histogram(iois: npt.ArrayLike, max_steps: int = IOI_MAX) -> FloatArray:
    """Normalized histogram over 0..max_steps of inter-onset intervals (longer ones clipped to the top)."""
    x = np.clip(np.asarray(iois, dtype=np.int64).ravel(), 0, max_steps)
    h = np.bincount(x, minlength=max_steps + 1).astype(np.float64)
    total = h.sum()
    return h / total if total else h


def emd_1d(hist_a: npt.ArrayLike, hist_b: npt.ArrayLike) -> float:
    """Earth mover's distance between two normalized histograms on the same unit-spaced bins.

    In one dimension it is the L1 distance between the cumulative sums (in bins, here steps).
    """
    a = np.asarray(hist_a, dtype=np.float64)
    b = np.asarray(hist_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"histograms differ in shape: {a.shape} vs {b.shape}")
    return float(np.abs(np.cumsum(a) - np.cumsum(b)).sum())


@dataclass
class PieceStats:
    """One piece reduced to the counts the table row is pooled from."""

    name: str
    n_steps: int
    agent_notes: int
    real_notes: int
    consonant: int
    """Agent onsets consonant with the performer's sounding note."""
    consonance_judged: int
    """Agent onsets where the performer sounds (the consonance denominator)."""
    not_in_key: int
    repeated: int
    leaps_resolved: int
    leaps_doubled: int
    autocorr: tuple[float, ...]
    """Autocorrelation of the token line at :data:`AUTOCORR_LAGS`."""
    high_unique: bool
    low_unique: bool
    parallels: int
    pc_overlap: float
    agent_iois: IntArray = field(repr=False)
    real_iois: IntArray = field(repr=False)
    time_consonant: int = 0
    """Steps where both lines sound and are consonant."""
    time_judged: int = 0
    """Steps where both lines sound."""
    change_consonant: int = 0
    """Performer onsets consonant with the agent's sounding note."""
    change_judged: int = 0
    """Performer onsets while the agent sounds."""
    offbeat: int = 0
    """Agent onsets off the beat."""
    off_eighth: int = 0
    """Agent onsets between the eighth notes."""
    bars: float = 0.0
    """Length of the piece in bars."""


def piece_stats(
    agent: npt.ArrayLike,
    performer: npt.ArrayLike,
    real: npt.ArrayLike,
    key: Key,
    name: str = "",
    grid: Grid | None = None,
) -> PieceStats:
    """All per-piece counts for one agent line played against ``performer`` (``real`` = the true part)."""
    grid = grid or Grid()
    ag, perf, rl = _as_line(agent), _as_line(performer), _as_line(real)
    if not ag.shape == perf.shape == rl.shape:
        raise ValueError(f"{name}: lines differ in length: {ag.shape}, {perf.shape}, {rl.shape}")
    consonant, judged = consonance_counts(ag, perf)
    resolved, doubled = leap_outcomes(ag)
    high, low = unique_extrema(ag)
    time_ok, time_n = time_consonance_counts(ag, perf)
    change_ok, change_n = change_consonance_counts(ag, perf)
    return PieceStats(
        name=name,
        n_steps=int(ag.size),
        agent_notes=int((ag >= ONSET_BASE).sum()),
        real_notes=int((rl >= ONSET_BASE).sum()),
        consonant=consonant,
        consonance_judged=judged,
        not_in_key=not_in_key_count(ag, key),
        repeated=int(excessively_repeated(ag).sum()),
        leaps_resolved=resolved,
        leaps_doubled=doubled,
        autocorr=tuple(autocorrelation(ag, lag) for lag in AUTOCORR_LAGS),
        high_unique=high,
        low_unique=low,
        parallels=parallel_perfects(ag, perf),
        pc_overlap=pitch_class_overlap(ag, rl),
        agent_iois=inter_onset_intervals(ag),
        real_iois=inter_onset_intervals(rl),
        time_consonant=time_ok,
        time_judged=time_n,
        change_consonant=change_ok,
        change_judged=change_n,
        offbeat=offbeat_onsets(ag, grid.steps_per_beat),
        off_eighth=off_eighth_onsets(ag, grid.steps_per_beat),
        bars=ag.size / grid.steps_per_bar,
    )


@dataclass(frozen=True)
class Column:
    """One column of the eval table."""

    key: str
    """Key in the row dict and the JSON."""
    header: str
    """Short header for the terminal and Markdown tables."""
    fmt: str
    """Format spec of the value (e.g. ``.1f``)."""
    better: str
    """Which way is better: ``high``, ``low``, ``one`` (closer to 1), ``real`` (closer to Bach's), or
    ``info`` (neither: context, such as the distance to the prior)."""


COLUMNS: tuple[Column, ...] = (
    Column("consonance_pct", "consonant %", ".1f", "high"),
    Column("time_consonance_pct", "time-weighted consonant %", ".1f", "high"),
    Column("change_consonance_pct", "consonant at melody changes %", ".1f", "high"),
    Column("not_in_key_pct", "not in key %", ".1f", "low"),
    Column("repeated_pct", "excess. repeated %", ".2f", "low"),
    Column("leaps_resolved_pct", "leaps resolved %", ".1f", "high"),
    Column("autocorr_1", "autocorr 1", ".3f", "real"),
    Column("autocorr_2", "autocorr 2", ".3f", "real"),
    Column("autocorr_3", "autocorr 3", ".3f", "real"),
    Column("unique_max_pct", "unique max %", ".1f", "real"),
    Column("unique_min_pct", "unique min %", ".1f", "real"),
    Column("parallels_per_100", "par. 5/8 per 100", ".2f", "low"),
    Column("pc_overlap", "PC overlap", ".3f", "high"),
    Column("ioi_emd", "IOI EMD", ".3f", "low"),
    Column("density_ratio", "density ratio", ".3f", "one"),
    Column("notes", "notes", "d", "real"),
    Column("notes_per_bar", "notes per bar", ".2f", "real"),
    Column("offbeat_pct", "off-beat onsets %", ".1f", "real"),
    Column("off_eighth_pct", "onsets between eighths %", ".1f", "real"),
    Column("kl_prior", "KL to prior", ".3f", "info"),
    Column("prior_agree_pct", "argmax = prior %", ".1f", "info"),
    Column("tritone_bar1_pct", "consonant, bar of a tritone jump %", ".1f", "high"),
    Column("tritone_bar2_pct", "consonant, bar after it %", ".1f", "high"),
    Column("tritone_bar2_base_pct", "bar after it, no jump %", ".1f", "info"),
)
"""The metric columns of a row, in table order (besides ``policy`` and ``pieces``)."""


MAIN_COLUMNS = (
    "consonance_pct", "time_consonance_pct", "change_consonance_pct", "parallels_per_100", "not_in_key_pct",
    "repeated_pct", "notes_per_bar", "density_ratio", "offbeat_pct", "kl_prior", "prior_agree_pct",
    "tritone_bar1_pct", "tritone_bar2_pct",
)  # fmt: skip
"""The columns of the README's first table (the issue-8 figures); the rest go in the second."""

PLAY_COLUMNS = (
    "kl_prior", "prior_agree_pct", "tritone_bar1_pct", "tritone_bar2_pct", "tritone_bar2_base_pct",
)  # fmt: skip
"""Columns the evaluator fills while playing (NaN in a row built from lines alone)."""


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den else float("nan")


def aggregate(stats: Sequence[PieceStats]) -> dict[str, float]:
    """Pool many pieces into one row (keys: :data:`COLUMNS` plus ``pieces``).

    Counts are pooled over pieces (ratio of sums) for the per-note rates; autocorrelations and the
    pitch-class overlap are means over pieces (NaNs skipped); unique max/min are shares of pieces; the
    IOI histograms are pooled over all pieces before the EMD. A rate with nothing to count is NaN.
    """
    n = len(stats)

    def total(attr: str) -> int:
        return int(sum(getattr(s, attr) for s in stats))

    notes = total("agent_notes")
    row: dict[str, float] = {
        "pieces": float(n),
        "consonance_pct": _pct(total("consonant"), total("consonance_judged")),
        "time_consonance_pct": _pct(total("time_consonant"), total("time_judged")),
        "change_consonance_pct": _pct(total("change_consonant"), total("change_judged")),
        "not_in_key_pct": _pct(total("not_in_key"), notes),
        "repeated_pct": _pct(total("repeated"), notes),
        "leaps_resolved_pct": _pct(total("leaps_resolved"), total("leaps_resolved") + total("leaps_doubled")),
    }
    for i, lag in enumerate(AUTOCORR_LAGS):
        row[f"autocorr_{lag}"] = _nanmean([s.autocorr[i] for s in stats])
    row["unique_max_pct"] = _pct(sum(s.high_unique for s in stats), n)
    row["unique_min_pct"] = _pct(sum(s.low_unique for s in stats), n)
    row["parallels_per_100"] = _pct(total("parallels"), notes)
    row["pc_overlap"] = _nanmean([s.pc_overlap for s in stats])
    a_iois = _concat(s.agent_iois for s in stats)
    r_iois = _concat(s.real_iois for s in stats)
    row["ioi_emd"] = (
        emd_1d(ioi_histogram(a_iois), ioi_histogram(r_iois)) if a_iois.size and r_iois.size else float("nan")
    )
    real_notes = total("real_notes")
    row["density_ratio"] = notes / real_notes if real_notes else float("nan")
    row["notes"] = float(notes)
    bars = sum(s.bars for s in stats)
    row["notes_per_bar"] = notes / bars if bars else float("nan")
    row["offbeat_pct"] = _pct(total("offbeat"), notes)
    row["off_eighth_pct"] = _pct(total("off_eighth"), notes)
    for key in PLAY_COLUMNS:  # filled by the evaluator, which plays the policy (not from lines alone)
        row[key] = float("nan")
    return row


def _nanmean(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _concat(arrays: Iterable[IntArray]) -> IntArray:
    parts = list(arrays)
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def line_metrics(
    agents: Sequence[npt.ArrayLike],
    performers: Sequence[npt.ArrayLike],
    reals: Sequence[npt.ArrayLike],
    keys: Sequence[Key],
    names: Sequence[str] | None = None,
    grid: Grid | None = None,
) -> dict[str, float]:
    """One row from complete lines of many pieces (each list indexed by piece)."""
    if not len(agents) == len(performers) == len(reals) == len(keys):
        raise ValueError("agents, performers, reals and keys must list the same pieces")
    nm = list(names) if names is not None else [str(i) for i in range(len(agents))]
    return aggregate(
        [
            piece_stats(a, p, r, k, name=n, grid=grid)
            for a, p, r, k, n in zip(agents, performers, reals, keys, nm, strict=True)
        ]
    )
