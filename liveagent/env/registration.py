"""Registers ``liveagent/Accompany-v0`` with gymnasium (lazily: the env module loads on ``gym.make``)."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "liveagent/Accompany-v0"


def register() -> None:
    """Register the accompaniment env once (safe to call repeatedly)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="liveagent.env.accompaniment:AccompanimentEnv")


register()
