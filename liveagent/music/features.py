"""The observation builder of the policy contract, shared by the environment and the live engine.

At step ``t`` a policy sees (contract v1):

- ``performer`` int64 [B, W]: the performer's tokens for steps ``t-W .. t-1`` (anticipate mode) or
  ``t-W+1 .. t`` (react mode);
- ``agent`` int64 [B, W]: the agent's own tokens for steps ``t-W .. t-1``;
- ``position`` int64 [B]: ``t mod steps_per_bar``.

Steps before the first step are REST. Everything writes into caller-owned buffers: the environment calls
:func:`build_observation` on whole histories, the live engine keeps a :class:`StreamingObservation`; a test
proves both give the same arrays for the same sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from liveagent.music.tokens import HOLD, ONSET_BASE, REST

Mode = Literal["anticipate", "react", "follow"]
MODES: tuple[Mode, ...] = ("anticipate", "react", "follow")
"""``anticipate``: the performer window ends at t-1. ``react`` and ``follow`` see the performer's step t
(their window ends at t): ``react`` is decided a fixed delay after T_t, ``follow`` as soon as the
performer's onset for t has arrived or a follow window after T_t has closed (the shipped default)."""

Int64Array = npt.NDArray[np.int64]


@dataclass
class ObservationBuffers:
    """Caller-owned arrays the builders fill in place (the ONNX inputs, by name)."""

    performer: Int64Array
    agent: Int64Array
    position: Int64Array

    @classmethod
    def allocate(cls, batch: int, window: int) -> ObservationBuffers:
        return cls(
            performer=np.zeros((batch, window), dtype=np.int64),
            agent=np.zeros((batch, window), dtype=np.int64),
            position=np.zeros(batch, dtype=np.int64),
        )

    def as_feed(self) -> dict[str, Int64Array]:
        """The ONNX input feed (same array objects, no copy)."""
        return {"performer": self.performer, "agent": self.agent, "position": self.position}


def hears_current_step(mode: str) -> bool:
    """The policy sees the performer's token at the step it decides (``react`` and ``follow``)."""
    return mode in ("react", "follow")


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode  # type: ignore[return-value]


def build_observation(
    performer: npt.ArrayLike,
    agent: npt.ArrayLike,
    t: npt.ArrayLike,
    *,
    window: int,
    steps_per_bar: int,
    mode: Mode = "anticipate",
    out: ObservationBuffers,
) -> ObservationBuffers:
    """Fill ``out`` with the observation at step(s) ``t`` from full token histories.

    ``performer`` and ``agent`` are ``[B, T]`` (or ``[T]`` with a scalar ``t``); entries at or after
    the step being decided are never read for the agent, nor after ``t`` (react) / ``t-1``
    (anticipate) for the performer, so callers may keep the future in the same array.
    """
    perf = np.atleast_2d(np.asarray(performer, dtype=np.int64))
    ag = np.atleast_2d(np.asarray(agent, dtype=np.int64))
    steps = np.atleast_1d(np.asarray(t, dtype=np.int64))
    n_steps = perf.shape[1]
    offsets = np.arange(-window, 0, dtype=np.int64)
    agent_idx = steps[:, None] + offsets
    perf_idx = agent_idx + (1 if hears_current_step(mode) else 0)
    for src, idx, dst in ((perf, perf_idx, out.performer), (ag, agent_idx, out.agent)):
        valid = (idx >= 0) & (idx < n_steps)
        gathered = np.take_along_axis(src, np.clip(idx, 0, n_steps - 1), axis=1)
        np.copyto(dst, np.where(valid, gathered, REST))
    np.remainder(steps, steps_per_bar, out=out.position)
    return out


def hide_current_onsets(performer: Int64Array, hide: npt.NDArray[np.bool_]) -> int:
    """In place: rows ``hide`` of follow/react windows ``[B, W]`` lose the onset of their last step.

    What a follow-mode engine hears when the performer is later than the follow window: the step is
    decided before the new note arrives, so the previous note still sounds (HOLD) or nothing does (REST).
    The history is not touched: the late onset belongs to its own step afterwards. Training with this
    (``late_onset_prob``) makes what the policy saw in training what it sees on stage. Returns how many
    onsets were hidden.
    """
    last = performer[:, -1]
    hit = hide & (last >= ONSET_BASE)
    if performer.shape[1] >= 2:
        before = np.where(performer[:, -2] != REST, HOLD, REST)
    else:
        before = np.full(performer.shape[0], REST, dtype=np.int64)
    np.copyto(last, before, where=hit)
    return int(hit.sum())


class StreamingObservation:
    """The live engine's observation for one session, updated in place one step at a time.

    Each line is kept twice in a ``2W`` ring so the current window is always one contiguous slice: no
    shifting, no allocation per step. ``push_performer`` / ``push_agent`` append the token of the next
    step; ``fill(out, t)`` copies the windows for deciding step ``t`` into ``out`` (batch row 0).
    """

    def __init__(self, *, window: int, steps_per_bar: int, mode: Mode = "anticipate") -> None:
        self.window = window
        self.steps_per_bar = steps_per_bar
        self.mode = check_mode(mode)
        self._perf = np.full(2 * window, REST, dtype=np.int64)
        self._agent = np.full(2 * window, REST, dtype=np.int64)
        self.performer_steps = 0
        """How many performer steps have been pushed (the next one pushed is this index)."""
        self.agent_steps = 0

    def reset(self) -> None:
        self._perf.fill(REST)
        self._agent.fill(REST)
        self.performer_steps = 0
        self.agent_steps = 0

    @staticmethod
    def _push(ring: Int64Array, count: int, window: int, token: int) -> None:
        i = count % window
        ring[i] = token
        ring[i + window] = token

    def push_performer(self, token: int) -> None:
        self._push(self._perf, self.performer_steps, self.window, token)
        self.performer_steps += 1

    def push_agent(self, token: int) -> None:
        self._push(self._agent, self.agent_steps, self.window, token)
        self.agent_steps += 1

    def amend_performer(self, step: int, token: int) -> None:
        """Rewrite the performer's token of an already pushed ``step`` (a late onset that belongs to it).

        Follow mode closes a step when its window passes; an onset that arrives later still belongs to
        its own step in the history (never a phantom onset on the next step). Steps older than the
        window are gone and are ignored.
        """
        if not 0 <= step < self.performer_steps:
            raise ValueError(f"step {step} was not pushed (have {self.performer_steps})")
        if step < self.performer_steps - self.window:
            return
        i = step % self.window
        self._perf[i] = token
        self._perf[i + self.window] = token

    def _window_of(self, ring: Int64Array, end: int) -> Int64Array:
        """The contiguous view of steps ``end-W .. end-1``; requires ``end`` pushed steps."""
        start = end % self.window
        return ring[start : start + self.window]

    def agent_window(self, end: int) -> Int64Array:
        """A view of the agent's steps ``end-W .. end-1`` (``end`` <= the steps pushed; do not keep it)."""
        if not 0 <= end <= self.agent_steps:
            raise ValueError(f"agent window up to {end} needs {end} agent steps, have {self.agent_steps}")
        return self._window_of(self._agent, end)

    def fill(self, out: ObservationBuffers, t: int) -> ObservationBuffers:
        """Write the observation for deciding step ``t`` into row 0 of ``out``.

        Requires ``t`` agent steps pushed, and ``t`` (anticipate) or ``t + 1`` (react, follow) performer
        steps.
        """
        perf_end = t + 1 if hears_current_step(self.mode) else t
        if self.agent_steps != t or self.performer_steps != perf_end:
            raise RuntimeError(
                f"step {t} needs {t} agent and {perf_end} performer steps, "
                f"have {self.agent_steps} and {self.performer_steps}"
            )
        out.performer[0] = self._window_of(self._perf, perf_end)
        out.agent[0] = self._window_of(self._agent, t)
        out.position[0] = t % self.steps_per_bar
        return out
