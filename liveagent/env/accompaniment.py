"""``AccompanimentEnv``: online accompaniment of one piece at a time, as a gymnasium environment.

At step t the agent picks its token from the performer's past (steps < t) and its own past (anticipate
mode; in react mode it also sees the performer's token at t); then the performer's token at t is revealed
and the step is rewarded with the weighted terms of :mod:`liveagent.env.rewards`. HOLD while the agent is
silent means REST. Episodes are pieces (or bar-aligned phrases of ``phrase_steps``), randomly transposed when
``config.transpose`` (to any key that keeps the real accompaniment inside ``pitch_min..pitch_max``).

- observation: ``Dict(performer=MultiDiscrete([130]*W), agent=MultiDiscrete([130]*W),
  position=Discrete(steps_per_bar))``, the contract arrays of ``liveagent.music.features.build_observation``;
- action: ``Discrete(130)``, a token (REST, HOLD, ONSET p);
- ``info``: ``action_mask`` bool[130] (pitch range), ``reward_terms`` {name: float} (weighted, summing to the
  reward), ``piece`` (name), ``transpose`` (semitones), ``start`` (first step in the piece), ``key``; at the
  end also ``episode_return`` and ``episode_length``.
- ``reset(options={"piece": i, "transpose": k, "start": s})`` pins the episode (tests, evaluation).

It is :class:`~liveagent.env.vector.BatchedAccompanimentEnv` with one env and no autoreset, so the single
and the batched env cannot disagree. Registered as ``liveagent/Accompany-v0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from liveagent.env.config import EnvConfig
from liveagent.env.rewards import LearnedTerm, RewardConfig
from liveagent.env.vector import BatchedAccompanimentEnv
from liveagent.music.piece import Piece

__all__ = ["AccompanimentEnv", "EnvConfig", "RewardConfig"]

ObsDict = dict[str, Any]


class AccompanimentEnv(gym.Env[ObsDict, np.int64]):
    """One online-accompaniment episode at a time (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(
        self,
        pieces: Sequence[Piece] | None = None,
        config: EnvConfig | None = None,
        *,
        learned_terms: Mapping[str, LearnedTerm] | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config or EnvConfig()
        self.render_mode = render_mode
        self._core = BatchedAccompanimentEnv(
            pieces, 1, self.config, learned_terms=learned_terms, autoreset=False, copy_obs=False
        )
        self.pieces = self._core.pieces
        self.observation_space = self.config.observation_space()
        self.action_space = spaces.Discrete(130)
        self._mask = self.config.action_mask()
        self._episode: dict[str, Any] = {}

    @property
    def learned_terms(self) -> dict[str, LearnedTerm]:
        return self._core.learned_terms

    def _obs(self) -> ObsDict:
        o = self._core._obs
        return {
            "performer": o.performer[0].copy(),
            "agent": o.agent[0].copy(),
            "position": np.int64(o.position[0]),
        }

    def _episode_info(self) -> dict[str, Any]:
        """What stays fixed during an episode (computed once per reset)."""
        i = int(self._core._piece[0])
        shift = int(self._core._shift[0])
        key = self.pieces[i].key
        return {
            "piece": self.pieces[i].name,
            "transpose": shift,
            "start": int(self._core._ep_start[0]),
            "key": None if key is None else str(key.transposed(shift)),
        }

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self._mask.copy(), **self._episode}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsDict, dict]:
        super().reset(seed=seed)
        self._core.np_random = self.np_random
        opts = dict(options or {})
        pinned = {
            "pieces": None if "piece" not in opts else [int(opts["piece"])],
            "transpose": opts.get("transpose"),
            "starts": opts.get("start"),
        }
        self._core.reset(options=pinned)
        self._episode = self._episode_info()
        return self._obs(), self._info()

    def expert_action(self) -> int:
        """The real accompaniment's token at the current step."""
        return int(self._core.expert_actions()[0])

    def step(self, action: Any) -> tuple[ObsDict, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(np.int64(action)):
            raise ValueError(f"action must be a token in 0..129, got {action!r}")
        _, reward, terminated, truncated, cinfo = self._core.step(np.array([action], dtype=np.int64))
        info = self._info()
        info["reward_terms"] = {name: float(v[0]) for name, v in cinfo["reward_terms"].items()}
        if cinfo["done"][0]:
            info["episode_return"] = float(cinfo["episode_return"][0])
            info["episode_length"] = int(cinfo["episode_length"][0])
        return self._obs(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info
