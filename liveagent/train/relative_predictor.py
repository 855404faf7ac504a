"""A key-free predictor of the performer's next note: the expected-consonance term's input in anticipate mode.

Why: the aux head predicts the next token from the trunk, which sees absolute pitches and the whole 8-bar
window. After the performer jumps a tritone it keeps predicting the old key for bars (valid split,
`python -m liveagent.train.predictor_check`: its pitch class right 23 % of the time in the bar after the
jump against 38 % without one), so the expected-consonance term steers the bass into the old key exactly
when it should follow. It also reads the harmony off the bass in its window, which helps in teacher-forced
training (Bach's bass) and not on stage (the policy's own line).

This predictor sees only the performer's last N steps (32 in `export/anticipate.onnx`: two bars), each
step as its interval to the performer's sounding pitch (or HOLD/REST), and the decided step's position in
the bar. Transposing the performer moves its prediction with it: a key change is followed as soon as the
new notes are heard. It is fitted by cross-entropy on the training windows and then frozen (PPO's gradient
through the term is not a prediction loss).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from liveagent.music.tokens import HOLD, ONSET_BASE

log = logging.getLogger(__name__)

__all__ = ["REL_CLASSES", "REL_CLIP", "RelativePredictor", "fit_relative_predictor", "relative_classes"]

REL_CLIP = 12
"""Intervals beyond an octave are clipped to it (a chorale melody almost never leaps further)."""
REL_HOLD = 2 * REL_CLIP + 1
REL_REST = REL_HOLD + 1
REL_CLASSES = REL_REST + 1
"""Onset intervals -12..+12, HOLD, REST."""


def relative_classes(tokens: torch.Tensor, perf1: torch.Tensor) -> torch.Tensor:
    """Tokens ``[B, ...]`` as classes relative to ``perf1`` ``[B]`` (the sounding ``pitch + 1``; 0 = silent):
    an onset is its clipped interval to the sounding pitch (REST's class when nothing sounds)."""
    ref = (perf1 - 1).reshape((-1,) + (1,) * (tokens.dim() - 1))
    interval = (tokens - ONSET_BASE - ref).clamp(-REL_CLIP, REL_CLIP) + REL_CLIP
    sounding = (perf1 > 0).reshape(ref.shape)
    onset_class = torch.where(sounding, interval, torch.full_like(interval, REL_REST))
    cls = torch.where(tokens == HOLD, torch.full_like(tokens, REL_HOLD), torch.full_like(tokens, REL_REST))
    return torch.where(tokens >= ONSET_BASE, onset_class, cls)


def _interval_pc_table() -> torch.Tensor:
    """[REL_CLASSES, 12]: the pitch-class offset each class lands on (HOLD: 0; REST: none)."""
    m = torch.zeros(REL_CLASSES, 12)
    for c in range(2 * REL_CLIP + 1):
        m[c, (c - REL_CLIP) % 12] = 1.0
    m[REL_HOLD, 0] = 1.0
    return m


class RelativePredictor(nn.Module):
    """``(performer [B, W], position [B], perf1 [B]) -> logits [B, REL_CLASSES]`` of the performer's next
    token relative to its sounding pitch; :meth:`pc_probs` turns them into absolute pitch classes."""

    interval_pc: torch.Tensor
    classes: torch.Tensor

    def __init__(self, steps: int, steps_per_bar: int, embed: int = 8, hidden: int = 128) -> None:
        super().__init__()
        self.steps = steps
        self.steps_per_bar = steps_per_bar
        self.embed = nn.Embedding(REL_CLASSES, embed)
        self.position = nn.Embedding(steps_per_bar, embed)
        self.mlp = nn.Sequential(
            nn.Linear((steps + 1) * embed, hidden), nn.GELU(), nn.Linear(hidden, REL_CLASSES)
        )
        self.register_buffer("interval_pc", _interval_pc_table(), persistent=False)
        self.register_buffer("classes", torch.arange(12, dtype=torch.int64).unsqueeze(0), persistent=False)
        nn.init.normal_(self.embed.weight, std=0.1)
        nn.init.normal_(self.position.weight, std=0.1)

    def forward(self, performer: torch.Tensor, position: torch.Tensor, perf1: torch.Tensor) -> torch.Tensor:
        b = performer.shape[0]
        recent = relative_classes(performer[:, -self.steps :], perf1)
        pos = self.position(torch.remainder(position, self.steps_per_bar))
        x = torch.cat([self.embed(recent).reshape(b, -1), pos], dim=1)
        return self.mlp(x)

    def pc_probs(self, logits: torch.Tensor, perf1: torch.Tensor) -> torch.Tensor:
        """[B, 12] probability of each absolute pitch class sounding at the decided step (REST's share is
        left out, as :meth:`ExpectedConsonance.pc_probs_from_tokens` does). All zeros while the performer
        is silent: there is no pitch to be relative to."""
        rel = torch.softmax(logits, dim=1) @ self.interval_pc  # [B, 12] offsets from the sounding pc
        pc = torch.remainder(perf1 - 1, 12).unsqueeze(1)
        out = rel.gather(1, torch.remainder(self.classes - pc, 12))  # absolute class c = offset c - pc
        return out * (perf1 > 0).float().unsqueeze(1)


def fit_relative_predictor(
    model: RelativePredictor,
    sounding1: Callable[[torch.Tensor], torch.Tensor],
    performer: np.ndarray,
    position: np.ndarray,
    perf_next: np.ndarray,
    *,
    steps: int,
    batch_size: int = 512,
    lr: float = 3e-3,
    seed: int = 0,
    key_change_prob: float = 0.0,
    key_change_steps: int = 32,
) -> dict[str, float]:
    """Fit ``model`` by cross-entropy on windows (``performer`` [N, W] uint8 tokens, ``position`` [N],
    ``perf_next`` [N] the performer's token at the decided step); ``sounding1(performer)`` gives the
    sounding ``pitch + 1``. Windows where the performer is silent are skipped (nothing to be relative to).
    ``key_change_prob``: that share of windows had their past moved to another key
    (:func:`liveagent.train.data.shift_rows_past`), so the predictor learns that a leap in its context may
    be a key change and not a melody. Returns the first and last loss (nats) and the last batches'
    accuracy."""
    from liveagent.train.data import shift_rows_past

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        perf1_all = torch.cat(
            [
                sounding1(torch.from_numpy(performer[s : s + 8192].astype(np.int64)))
                for s in range(0, len(performer), 8192)
            ]
        )
    keep = np.nonzero(perf1_all.numpy() > 0)[0]
    if keep.size == 0:
        raise ValueError("no window where the performer sounds: nothing to fit the relative predictor on")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    first = last = float("nan")
    correct = seen = 0
    t0 = time.perf_counter()
    for step in range(steps):
        idx = keep[rng.integers(keep.size, size=batch_size)]
        perf_np = performer[idx].astype(np.int64)
        if key_change_prob > 0.0:
            shift_rows_past((perf_np,), rng, key_change_prob, key_change_steps)
        perf = torch.from_numpy(perf_np)
        with torch.no_grad():
            perf1 = sounding1(perf)
        target = relative_classes(torch.from_numpy(perf_next[idx].astype(np.int64)), perf1)
        logits = model(perf, torch.from_numpy(position[idx]), perf1)
        loss = nnf.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in opt.param_groups:  # cosine decay to a tenth
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / max(steps, 1))))
        opt.step()
        if step == 0:
            first = loss.item()
        if step >= steps - 50:
            correct += int((logits.argmax(1) == target).sum())
            seen += len(idx)
        last = loss.item()
    model.eval()
    res = {
        "loss_first": first,
        "loss_last": last,
        "acc_last": correct / max(seen, 1),
        "windows": float(keep.size),
    }
    log.info("relative predictor: %d steps in %.1f s, loss %.3f -> %.3f, accuracy %.3f",
             steps, time.perf_counter() - t0, first, last, res["acc_last"])  # fmt: skip
    return res
