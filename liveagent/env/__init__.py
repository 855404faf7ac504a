"""The learning environment (numpy + gymnasium): AccompanimentEnv, the vector env, rewards, metrics, eval.

Importing this package only registers ``liveagent/Accompany-v0`` (a string entry point); the environments
load on first use: ``from liveagent.env.accompaniment import AccompanimentEnv, EnvConfig`` and
``from liveagent.env.vector import BatchedAccompanimentEnv``.
"""

from liveagent.env.registration import ENV_ID, register

__all__ = ["ENV_ID", "register"]
