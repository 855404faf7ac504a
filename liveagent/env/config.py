"""The environment's configuration (shared by the single and the batched environment) and its spaces."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from gymnasium import spaces

from liveagent.env.rewards import RewardConfig
from liveagent.music.features import Mode, check_mode
from liveagent.music.piece import Piece
from liveagent.music.sampling import range_mask
from liveagent.music.tokens import VOCAB_SIZE, Grid


@dataclass(frozen=True)
class EnvConfig:
    """How episodes are built and observed (one config for ``AccompanimentEnv`` and the batched env)."""

    window: int = 32
    """W: steps of history in each observation line (the contract's window)."""
    mode: Mode = "anticipate"
    """``anticipate``: the agent decides step t before hearing the performer at t; ``react``: after."""
    grid: Grid = field(default_factory=Grid)
    """The step grid; every piece must use it. ``position`` is ``t mod grid.steps_per_bar``."""
    pitch_min: int = 36
    """Lowest onset pitch of the agent's part (C2: the chorale bass's range by default)."""
    pitch_max: int = 64
    """Highest onset pitch of the agent's part (E4)."""
    transpose: bool = True
    """Transpose each episode at random to a key that keeps the real accompaniment in range (training)."""
    phrase_steps: int | None = None
    """Episode length in steps (bar-aligned phrases cut from the pieces); None = whole pieces."""
    phrase_history: bool = False
    """A phrase starts with the piece's real history in the window (the performer's line and the real
    accompaniment as the agent's past), not with silence that looks like a piece's opening."""
    late_onset_prob: float = 0.0
    """Follow/react mode: chance that the performer's onset at t is not yet heard when the agent decides
    (the step's window closed first); the onset still enters the history (human timing in training)."""
    key_change_prob: float = 0.0
    """Chance that an episode's performer jumps to a new key (a shift of 1-6 semitones either way) at a
    random bar line inside it, and stays there: teaches the recovery ReaLchords tests with a tritone."""
    split: str = "train"
    """Chorale split loaded when the environment is built without pieces (e.g. by ``gym.make``)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Weights of the rule-based reward terms."""

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.window < 1:
            raise ValueError(f"window must be positive, got {self.window}")
        range_mask(self.pitch_min, self.pitch_max)  # validates the range
        for name in ("late_onset_prob", "key_change_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    @property
    def history_steps(self) -> int:
        """Steps of real history loaded before a phrase (whole bars covering the window), or 0."""
        if not self.phrase_history or self.phrase_steps is None:
            return 0
        spb = self.grid.steps_per_bar
        return -(-self.window // spb) * spb

    @property
    def steps_per_bar(self) -> int:
        return self.grid.steps_per_bar

    def action_mask(self) -> np.ndarray:
        """bool[130]: REST, HOLD and onsets inside the agent's range."""
        return range_mask(self.pitch_min, self.pitch_max)

    def observation_space(self) -> spaces.Dict:
        """The contract arrays of one env: ``performer``/``agent`` tokens [W] and ``position``."""
        tokens = spaces.MultiDiscrete(np.full(self.window, VOCAB_SIZE, dtype=np.int64))
        return spaces.Dict(
            {
                "performer": tokens,
                "agent": spaces.MultiDiscrete(np.full(self.window, VOCAB_SIZE, dtype=np.int64)),
                "position": spaces.Discrete(self.steps_per_bar),
            }
        )


def default_pieces(config: EnvConfig) -> list[Piece]:
    """The chorale split ``config.split`` (soprano -> bass), loaded lazily (parsed by music21 once)."""
    from liveagent.music.chorales import chorale_split

    return list(chorale_split(config.split, grid=config.grid))
