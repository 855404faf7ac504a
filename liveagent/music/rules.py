"""A rule-based bass accompanist (numpy only), usable anywhere a contract policy is.

It is the ``rules`` baseline of ``liveagent eval`` and a fallback policy that needs no model file. The
rules are textbook thoroughbass and two-voice counterpoint, applied online:

1. Key: Krumhansl-Schmuckler (Krumhansl & Kessler 1982 profiles) over the pitch classes heard in the
   window (the performer's notes, and the bass's own at half weight), vectorized over the batch.
2. Harmony: the diatonic triad (I IV V vi ii iii vii°, minor with the harmonic-minor V) that best covers
   the performer's recent notes, recency-weighted, with the last sounding note counted most; the primary
   triads (I, IV, V) are favoured a priori, as in any harmonization primer (e.g. Piston, *Harmony*).
3. Bass note: a chord tone in range, root position preferred, then first inversion, the second inversion
   (6/4) avoided; consonant with the performer's last sounding note as two-voice counterpoint demands
   (unisons, fifths, octaves, thirds, sixths; the fourth above the bass is a dissonance, Fux); never at or
   above the melody; moving by step where it can (Fux's first rule of the lower voice: prefer conjunct
   motion), leaps kept small; no parallel fifths or octaves with the performer.
4. Rhythm: a new note on every beat (``onset_every`` steps), HOLD in between and when the chosen note is
   the one already sounding, but never longer than a bar; silence when the performer has been silent for
   a whole ``onset_every`` span (end of phrase) or has not started.

In ``anticipate`` mode the performer's note at the step being decided is unknown (the window ends one
step earlier), so "the melody" is its last sounding note; in ``react`` mode the window includes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from liveagent.music.features import Mode, ObservationBuffers, check_mode, hears_current_step
from liveagent.music.theory import CONSONANT_TWO_VOICE, KK_MAJOR, KK_MINOR, Key
from liveagent.music.tokens import HOLD, NO_PITCH, ONSET_BASE, REST, VOCAB_SIZE, sounding_pitches

FloatArray = npt.NDArray[np.float32]

# Diatonic triads per mode: (root offset from the tonic, quality intervals), with a prior preference.
_MAJOR_TRIADS = (
    (0, (0, 4, 7)),
    (2, (0, 3, 7)),
    (4, (0, 3, 7)),
    (5, (0, 4, 7)),
    (7, (0, 4, 7)),
    (9, (0, 3, 7)),
    (11, (0, 3, 6)),
)
_MINOR_TRIADS = (
    (0, (0, 3, 7)),
    (2, (0, 3, 6)),
    (3, (0, 4, 7)),
    (5, (0, 3, 7)),
    (7, (0, 4, 7)),
    (8, (0, 4, 7)),
    (11, (0, 3, 6)),
)
_MAJOR_PRIOR = (1.0, 0.45, 0.15, 0.8, 0.9, 0.5, 0.0)
_MINOR_PRIOR = (1.0, 0.05, 0.45, 0.8, 0.9, 0.5, 0.0)
N_CHORDS = 7

# Where a chorale soprano goes at a beat, measured on the train split (steps per beat 4): held or
# re-struck ~31%, a step down ~32%, a step up ~25%, small leaps the rest.
_NEXT_OFFSETS = np.array([0, -1, -2, 1, 2, -3, -4, 3, 4, 5, -5, 7, -7], dtype=np.int64)
_NEXT_PROBS = np.array([0.31, 0.11, 0.21, 0.085, 0.16, 0.025, 0.017, 0.014, 0.009, 0.03, 0.013, 0.01, 0.008])

LOW = -30.0
"""Logit of tokens the rules never choose (finite so downstream log-softmax stays finite)."""


def _chord_tables() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per key index (0..11 major, 12..23 minor): chord pc membership [24,7,12], bass role bonus [24,7,12]
    (root > third > fifth) and the chord prior [24,7]."""
    member = np.zeros((24, N_CHORDS, 12))
    role = np.full((24, N_CHORDS, 12), -np.inf)
    prior = np.zeros((24, N_CHORDS))
    role_bonus = (1.0, 0.6, -0.6)  # root position, first inversion, second inversion (6/4: avoid)
    for k in range(24):
        tonic, minor = k % 12, k >= 12
        triads, pri = (_MINOR_TRIADS, _MINOR_PRIOR) if minor else (_MAJOR_TRIADS, _MAJOR_PRIOR)
        for c, (off, quality) in enumerate(triads):
            for r, iv in enumerate(quality):
                pc = (tonic + off + iv) % 12
                member[k, c, pc] = 1.0
                role[k, c, pc] = role_bonus[r]
            prior[k, c] = pri[c]
    return member, role, prior


_MEMBER, _ROLE, _PRIOR = _chord_tables()
_KEY_PCS = np.zeros((24, 12), dtype=bool)
"""In-key pitch classes per key index (major scale; minor with raised 6th and 7th, as theory.Key)."""
for _k in range(24):
    _KEY_PCS[_k, list(Key(_k % 12, "minor" if _k >= 12 else "major").pitch_classes)] = True


def _zscore(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x = x - x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


_PROFILES = _zscore(
    np.stack([np.roll(KK_MAJOR, k) for k in range(12)] + [np.roll(KK_MINOR, k) for k in range(12)])
)


def estimate_keys(hist: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Krumhansl-Schmuckler over a batch: [B,12] histograms -> key index [B] (0..11 major, 12..23 minor).

    Same correlation as ``theory.estimate_key`` (Pearson r with the rotated K-K profiles), as one matrix
    product; an empty or flat histogram gives C major (index 0), as there.
    """
    h = np.atleast_2d(np.asarray(hist, dtype=np.float64))
    corr = _zscore(h) @ _PROFILES.T
    return np.argmax(corr, axis=1).astype(np.int64)


@dataclass
class RulesAccompanist:
    """Callable contract policy: ``(obs) -> float32 logits [B, 130]``; greedy decoding plays the rules."""

    steps_per_bar: int = 16
    """Steps per bar of the grid (the contract's steps_per_beat * beats_per_bar)."""
    pitch_min: int = 36
    """Lowest bass pitch (C2)."""
    pitch_max: int = 62
    """Highest bass pitch (D4)."""
    mode: Mode = "anticipate"
    """anticipate: the window ends at t-1; react: it includes the performer's step t."""
    steps_per_beat: int = 4
    """Steps per beat, to find the beats."""
    onset_every: int = 0
    """A new bass decision every this many steps (0 = every beat)."""

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if not 0 <= self.pitch_min < self.pitch_max <= 127:
            raise ValueError(f"bad pitch range {self.pitch_min}..{self.pitch_max}")
        if self.onset_every <= 0:
            self.onset_every = self.steps_per_beat
        self._pitches = np.arange(self.pitch_min, self.pitch_max + 1)
        center = (self.pitch_min + self.pitch_max) / 2.0
        self._register = -0.04 * np.abs(self._pitches - center)

    def __call__(self, obs: ObservationBuffers) -> FloatArray:
        perf = np.asarray(obs.performer, dtype=np.int64)
        agent = np.asarray(obs.agent, dtype=np.int64)
        b, w = perf.shape
        pos = np.asarray(obs.position, dtype=np.int64).reshape(b)
        perf_snd = sounding_pitches(perf)
        agent_snd = sounding_pitches(agent)
        rows = np.arange(b)

        # --- key from the window (performer, plus the bass's own notes at half weight) ---
        hist = np.zeros((b, 12))
        for snd, weight in ((perf_snd, 1.0), (agent_snd, 0.5)):
            r, c = np.nonzero(snd >= 0)
            np.add.at(hist, (r, snd[r, c] % 12), weight)
        key = estimate_keys(hist)

        # --- the melody: last sounding note, recency-weighted recent notes, silence spans ---
        melody = perf_snd[:, -1]
        recency = np.where(np.arange(w) >= w - 2 * self.steps_per_beat, 1.0, 0.15)
        recent = np.zeros((b, 12))
        r, c = np.nonzero(perf_snd >= 0)
        np.add.at(recent, (r, perf_snd[r, c] % 12), recency[c])
        if np.any(melody >= 0):
            recent[rows[melody >= 0], melody[melody >= 0] % 12] += 3.0
        recent /= np.maximum(recent.sum(axis=1, keepdims=True), 1e-9)
        span = min(self.onset_every, w)
        silent_span = np.all(perf_snd[:, w - span :] < 0, axis=1)

        # --- chord scores [B,7]: coverage of the recent melody + prior ---
        member = _MEMBER[key]  # [B,7,12]
        chord_score = 3.0 * np.einsum("bcp,bp->bc", member, recent) + _PRIOR[key]
        heard_before = np.any(agent >= ONSET_BASE, axis=1)
        chord_score[:, 0] += np.where(heard_before, 0.0, 1.0)  # start on the tonic

        # --- the bass's own state ---
        bass_now = agent_snd[:, -1]
        onset_cols = np.where(agent >= ONSET_BASE, np.arange(w), -1).max(axis=1)
        prev_bass = np.where(onset_cols >= 0, agent[rows, np.maximum(onset_cols, 0)] - ONSET_BASE, NO_PITCH)
        held_for = np.where(bass_now >= 0, w - onset_cols, 0)

        # --- bass pitch scores [B,7,P] ---
        p = self._pitches  # [P]
        pc = p % 12
        role = _ROLE[key][:, :, pc]  # [B,7,P]; -inf for non-chord tones
        mel = melody[:, None]
        has_mel = mel >= 0
        # The melody at t: known in react mode, a forecast from the last note in anticipate mode.
        cand, prob = self._forecast(melody, key)  # [B,K] pitches and probabilities
        ic_k = np.abs(cand[:, :, None] - p[None, None, :]) % 12  # [B,K,P]
        expected = np.einsum("bk,bkp->bp", prob, CONSONANT_TWO_VOICE[ic_k].astype(np.float64))
        pitch_score = np.where(has_mel, 6.0 * (expected - 0.5), 0.0)
        pitch_score = pitch_score + np.where(has_mel & (p[None, :] > mel - 3), -8.0, 0.0)  # stay below
        pb = prev_bass[:, None]
        d = np.abs(p[None, :] - pb)
        motion = np.select(
            [d == 0, d <= 2, d <= 4, d <= 7, d == 12],
            [0.3, 1.2, 0.6, 0.0, -0.6],
            default=-1.5 - 0.1 * d,
        )
        pitch_score = pitch_score + np.where(pb >= 0, motion, 0.0) + self._register[None, :]
        # Parallel fifths/octaves: the sounding pair (melody before t, bass now) is perfect, and the bass
        # moves in the melody's direction to the same perfect interval (expected over the forecast).
        m_prev = perf_snd[:, -2] if (hears_current_step(self.mode) and w >= 2) else melody
        prev_ic = np.abs(m_prev - bass_now) % 12
        prev_perfect = (m_prev >= 0) & (bass_now >= 0) & ((prev_ic == 0) | (prev_ic == 7))
        dir_bass = np.sign(p[None, :] - bass_now[:, None])  # [B,P]
        dir_mel = np.sign(cand - m_prev[:, None])  # [B,K]
        par_k = (ic_k == prev_ic[:, None, None]) & (dir_bass[:, None, :] == dir_mel[:, :, None])
        par_k &= (dir_bass != 0)[:, None, :]
        parallel = np.einsum("bk,bkp->bp", prob, par_k.astype(np.float64)) * prev_perfect[:, None]
        pitch_score = pitch_score - 8.0 * parallel
        # A note already held for (almost) a bar must change.
        too_long = (held_for + self.onset_every > self.steps_per_bar)[:, None] & (
            p[None, :] == bass_now[:, None]
        )
        pitch_score = pitch_score - np.where(too_long, 6.0, 0.0)
        total = role + pitch_score[:, None, :] + 1.5 * chord_score[:, :, None]
        best = total.max(axis=1)  # [B,P]: each pitch under its best chord
        best = np.where(np.isfinite(best), best, LOW)
        choice = self._pitches[np.argmax(best, axis=1)]

        # --- tokens: onset / HOLD / REST as logits ---
        logits = np.full((b, VOCAB_SIZE), LOW, dtype=np.float32)
        top = best.max(axis=1, keepdims=True)
        logits[:, ONSET_BASE + self.pitch_min : ONSET_BASE + self.pitch_max + 1] = np.maximum(
            best - top, LOW + 1.0
        )
        on_beat = (pos % self.onset_every) == 0
        sounding = bass_now >= 0
        started = np.any(perf_snd >= 0, axis=1)
        rest = ~started | silent_span
        decide = on_beat & ~rest
        keep = decide & sounding & (choice == bass_now)
        # Decisions: onset (its logit is already the max, 0), HOLD (+5) or REST (+5).
        hold_rows = (~decide & sounding & ~rest) | keep
        rest_rows = ~decide & ~hold_rows
        logits[:, HOLD] = np.where(hold_rows, 5.0, -5.0)
        logits[:, REST] = np.where(rest_rows, 5.0, -10.0)
        return logits

    def _forecast(
        self, melody: npt.NDArray[np.int64], key: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Candidate melody pitches at step t [B,K] and their probabilities [B,K].

        react: the window's last note, for sure. anticipate: the last note held or re-struck, or a step
        away, with the frequencies of chorale sopranos on beats (``_NEXT_PROBS``); only in-key moves.
        """
        if hears_current_step(self.mode):
            return melody[:, None], np.ones((melody.shape[0], 1))
        offs = _NEXT_OFFSETS
        cand = melody[:, None] + offs[None, :]
        in_key = _KEY_PCS[key[:, None], cand % 12]
        prob = np.where(in_key | (offs[None, :] == 0), _NEXT_PROBS[None, :], 0.0)
        prob /= np.maximum(prob.sum(axis=1, keepdims=True), 1e-9)
        return cand, prob

    def greedy(self, obs: ObservationBuffers) -> npt.NDArray[np.int64]:
        """The token greedy decoding plays (argmax; the logits already respect the range)."""
        return np.argmax(self(obs), axis=1).astype(np.int64)
