"""Musical features derived inside the network from the contract's token windows (torch, ONNX-exportable).

Why inside the graph: the contract's inputs stay the v1 token windows (any runtime that can feed a v1
policy can feed this one), and what a policy needs to anticipate is computed the same way in training, in
``liveagent eval`` and on stage, because it is part of the exported network:

- the sounding pitch of each line at the end of its window (pitch class, register, present or not) and
  the vertical interval class between them, now and at the last step both windows share (for parallels);
- the last melodic interval of each line;
- how long ago each line last struck a note;
- pitch-class histograms of both lines' onsets over the whole window (8 bars at W = 128 on a 16th grid),
  and a running key estimate from the performer's histogram (correlation with the 24
  Krumhansl-Kessler profiles, as :func:`liveagent.music.theory.estimate_key` does in numpy).

:func:`expected_consonance` turns a distribution over the performer's pitch class at the decided step into
a per-token score: +1 for a token whose sounding pitch is consonant with it, -1 dissonant, in expectation
(the "expected-consonance" term of issue 8: an n-gram that maximizes it reaches 78-80 % on the chorales).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as nnf

from liveagent.music.theory import CONSONANT_TWO_VOICE, KK_MAJOR, KK_MINOR
from liveagent.music.tokens import HOLD, ONSET_BASE, VOCAB_SIZE

INTERVAL_CLIP = 12
"""Melodic intervals are clipped to +-an octave before one-hot coding (25 classes)."""


def _key_profiles() -> torch.Tensor:
    """[12, 24]: z-scored Krumhansl-Kessler major then minor profiles for tonics C..B, divided by 12."""
    cols = []
    for profile in (KK_MAJOR, KK_MINOR):
        p = np.asarray(profile, dtype=np.float64)
        z = (p - p.mean()) / p.std()
        cols += [np.roll(z, tonic) for tonic in range(12)]
    return torch.tensor(np.stack(cols, axis=1) / 12.0, dtype=torch.float32)


def _consonance_signs() -> torch.Tensor:
    """[12, 12]: +1 where agent pitch class a under performer pitch class p is consonant, else -1."""
    a = np.arange(12)[:, None]
    p = np.arange(12)[None, :]
    ok = CONSONANT_TWO_VOICE[(p - a) % 12]
    return torch.tensor(np.where(ok, 1.0, -1.0), dtype=torch.float32)


def _token_pitch_class() -> torch.Tensor:
    """[130, 12]: one-hot pitch class of each ONSET token (REST and HOLD rows are zero)."""
    m = np.zeros((VOCAB_SIZE, 12), dtype=np.float32)
    for p in range(128):
        m[ONSET_BASE + p, p % 12] = 1.0
    return torch.from_numpy(m)


def _one_hot_table(n: int, width: int, *, period: int | None = None) -> torch.Tensor:
    """[n + 1, width]: row 0 is zeros (none), row i + 1 the one-hot of ``i`` (mod ``period``)."""
    m = np.zeros((n + 1, width), dtype=np.float32)
    for i in range(n):
        m[i + 1, i % period if period else i] = 1.0
    return torch.from_numpy(m)


def feature_dim() -> int:
    """Width of :meth:`MusicalFeatures.forward`'s output."""
    line = 12 + 2 + (2 * INTERVAL_CLIP + 1) + 1 + 12  # pc, present+register, melodic interval, since, hist
    return 2 * line + 12 + 12 + 24 + 1


class Sounding(NamedTuple):
    """Sounding pitches as ``pitch + 1`` (0 = silent), ``[B]`` each."""

    performer: torch.Tensor
    """The performer at the end of its window (t in follow mode, t-1 in anticipate mode)."""
    agent: torch.Tensor
    """The agent at t-1 (its last step)."""
    performer_aligned: torch.Tensor
    """The performer at t-1: the step the agent's last note was heard against."""


class MusicalFeatures(torch.nn.Module):
    """``(performer [B, W], agent [B, W]) -> (float32 [B, feature_dim()], performer pitch, agent pitch)``.

    Pitches travel as ``pitch + 1`` with 0 = silent, so every one-hot is one table lookup (few graph
    nodes: onnxruntime's cost here is per node, not per multiply). ``hears_current``: the performer window
    ends at the decided step t (follow/react) instead of t-1, so the step both windows share (for the
    vertical interval the agent's last note made) is the performer's second-to-last.
    """

    steps1: torch.Tensor
    key_profiles: torch.Tensor
    pitch_pc: torch.Tensor
    ic_hot: torch.Tensor
    move_hot: torch.Tensor
    token_pc: torch.Tensor

    def __init__(self, window: int, hears_current: bool) -> None:
        super().__init__()
        self.window = window
        self.hears_current = hears_current
        self.register_buffer("steps1", torch.arange(1, window + 1, dtype=torch.int64), persistent=False)
        self.register_buffer("key_profiles", _key_profiles(), persistent=False)
        self.register_buffer("pitch_pc", _one_hot_table(128, 12, period=12), persistent=False)
        self.register_buffer("ic_hot", _one_hot_table(12, 12), persistent=False)
        self.register_buffer(
            "move_hot", _one_hot_table(2 * INTERVAL_CLIP + 1, 2 * INTERVAL_CLIP + 1), persistent=False
        )
        self.register_buffer("token_pc", _token_pitch_class(), persistent=False)

    def _last1(self, mask: torch.Tensor) -> torch.Tensor:
        """1-based index of the last True per row (0 = none); ``mask`` spans the whole window."""
        return (mask * self.steps1).amax(dim=1)

    @staticmethod
    def _at(tokens: torch.Tensor, idx1: torch.Tensor) -> torch.Tensor:
        return tokens.gather(1, (idx1 - 1).clamp(min=0).unsqueeze(1)).squeeze(1)

    def sounding1(self, tokens: torch.Tensor, before_last: bool = False) -> torch.Tensor:
        """``pitch + 1`` sounding at the window's last step (or the one before), 0 when silent or unknown."""
        events = tokens != HOLD
        if before_last:
            events = events & (self.steps1 < self.window)
        idx = self._last1(events)
        tok = self._at(tokens, idx)
        return torch.where((idx > 0) & (tok >= ONSET_BASE), tok - (ONSET_BASE - 1), 0)

    def _line(self, tokens: torch.Tensor, pitch1: torch.Tensor) -> torch.Tensor:
        """One line: pc one-hot, present, register, last melodic interval, since last onset, histogram."""
        w = self.window
        onset = tokens >= ONSET_BASE
        last = self._last1(onset)
        prev = self._last1(onset & (self.steps1 < last.unsqueeze(1)))
        move = (self._at(tokens, last) - self._at(tokens, prev)).clamp(-INTERVAL_CLIP, INTERVAL_CLIP)
        move_hot = nnf.embedding(torch.where(prev > 0, move + (INTERVAL_CLIP + 1), 0), self.move_hot)
        since = (w - last).float().unsqueeze(1) / w  # 1.0 when no onset in the window
        hist = nnf.embedding(tokens, self.token_pc).sum(dim=1)
        hist = hist / hist.sum(dim=1, keepdim=True).clamp(min=1.0)
        present = (pitch1 > 0).float().unsqueeze(1)
        register = pitch1.float().unsqueeze(1) / 128.0
        return torch.cat([nnf.embedding(pitch1, self.pitch_pc), present, register, move_hot, since, hist], 1)

    def _ic(self, upper1: torch.Tensor, lower1: torch.Tensor) -> torch.Tensor:
        both = (upper1 > 0) & (lower1 > 0)
        return nnf.embedding(torch.where(both, torch.remainder(upper1 - lower1, 12) + 1, 0), self.ic_hot)

    def forward(self, performer: torch.Tensor, agent: torch.Tensor) -> tuple[torch.Tensor, Sounding]:
        """``(features [B, F], the sounding pitches)``.

        Both lines go through one set of operations as a ``[2B, W]`` stack: onnxruntime's cost here is per
        graph node, so this halves the features' share of a decision.
        """
        b = performer.shape[0]
        lines = torch.cat([performer, agent], 0)
        sounding = self.sounding1(lines)
        line_feats = self._line(lines, sounding)
        perf1, agent1 = sounding[:b], sounding[b:]
        perf_line, agent_line = line_feats[:b], line_feats[b:]
        aligned1 = self.sounding1(performer, before_last=True) if self.hears_current else perf1
        hist = perf_line[:, -12:]
        centred = hist - hist.mean(dim=1, keepdim=True)
        key = centred @ self.key_profiles / centred.norm(dim=1, keepdim=True).clamp(min=1e-3)
        both = (perf1 > 0) & (agent1 > 0)
        gap = torch.where(both, agent1 - perf1, 0).float().unsqueeze(1) / 24.0
        feats = [perf_line, agent_line, self._ic(perf1, agent1), self._ic(aligned1, agent1), key, gap]
        return torch.cat(feats, 1), Sounding(perf1, agent1, aligned1)


class ExpectedConsonance(torch.nn.Module):
    """Per-token expected consonance with the performer's note at the decided step, in [-1, 1].

    ``perf_pc_probs`` [B, 12] is the probability of each performer pitch class sounding at the decided
    step (it may sum to < 1: the performer may rest). An onset token scores by its own pitch class, HOLD
    by the agent's sounding pitch class (0 when silent), REST scores 0.
    """

    signs_t: torch.Tensor
    token_pc: torch.Tensor
    token_pc_t: torch.Tensor
    pitch_pc: torch.Tensor
    classes: torch.Tensor
    hold_col: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("signs_t", _consonance_signs().T.contiguous(), persistent=False)
        self.register_buffer("token_pc", _token_pitch_class(), persistent=False)
        self.register_buffer("token_pc_t", _token_pitch_class().T.contiguous(), persistent=False)
        self.register_buffer("pitch_pc", _one_hot_table(128, 12, period=12), persistent=False)
        self.register_buffer("classes", torch.arange(12, dtype=torch.int64).unsqueeze(0), persistent=False)
        hold = torch.zeros(VOCAB_SIZE)
        hold[HOLD] = 1.0
        self.register_buffer("hold_col", hold, persistent=False)

    def forward(self, perf_pc_probs: torch.Tensor, agent1: torch.Tensor) -> torch.Tensor:
        by_pc = perf_pc_probs @ self.signs_t  # [B, 12]: expected sign for each agent pitch class
        held = (by_pc * nnf.embedding(agent1, self.pitch_pc)).sum(dim=1, keepdim=True)
        return by_pc @ self.token_pc_t + held * self.hold_col  # REST stays 0

    def parallels(self, perf_pc_probs: torch.Tensor, sounding: Sounding) -> torch.Tensor:
        """Per-token risk in [0, 1] of a parallel fifth or octave with the performer's note at the step.

        When the agent's last note made a perfect interval with the performer (at t-1), an onset of pitch
        class ``q`` (not the agent's own) makes the same interval again exactly when the performer moves
        to class ``q + interval``: the risk is that class's probability (Fux: parallel perfect intervals
        are forbidden; both voices move). HOLD and REST carry no risk.
        """
        agent1, aligned1 = sounding.agent, sounding.performer_aligned
        ic = torch.remainder(aligned1 - agent1, 12)
        perfect = ((agent1 > 0) & (aligned1 > 0) & ((ic == 0) | (ic == 7))).float().unsqueeze(1)
        same = perf_pc_probs.gather(1, torch.remainder(self.classes + ic.unsqueeze(1), 12))  # [B, 12]
        risk = same * (1.0 - self.pc_of(agent1)) * perfect
        return risk @ self.token_pc_t

    def pc_of(self, pitch1: torch.Tensor) -> torch.Tensor:
        """[B, 12] one-hot pitch class of ``pitch + 1`` (zeros when silent)."""
        return nnf.embedding(pitch1, self.pitch_pc)

    def pc_probs_from_tokens(self, token_probs: torch.Tensor, perf1: torch.Tensor) -> torch.Tensor:
        """[B, 12] pitch-class probabilities from a distribution over the performer's next token.

        ONSET tokens add to their pitch class; HOLD continues the performer's sounding pitch; REST adds
        nothing.
        """
        return token_probs @ self.token_pc + token_probs[:, HOLD : HOLD + 1] * self.pc_of(perf1)
