"""liveagent: a real-time live accompanist driven by reinforcement-learning policies."""

__version__ = "0.1.0"
