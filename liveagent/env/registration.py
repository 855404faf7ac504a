"""Registers ``liveagent/Accompany-v0`` with gymnasium: the one registration lives in the package's
``__init__`` (:func:`liveagent.register_envs`, which ``import liveagent`` arranges); this module keeps the
names ``liveagent.env`` has always exported."""

from __future__ import annotations

from liveagent import ENV_ID, register_envs

__all__ = ["ENV_ID", "register"]


def register() -> None:
    """Register the accompaniment env once (safe to call repeatedly)."""
    register_envs()


register()
