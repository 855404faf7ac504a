"""The style's glide on the engine thread (contract-1.2 policies): the request the performer made last
(:mod:`liveagent.live.style_rules` validates it) and the way the policy gets there.

A change glides linearly over one bar: before each step it decides, the engine interpolates ``z`` between
where it was and the target, by absolute step (a skipped or missed step does not slow the glide), in
preallocated arrays, and hands it to ``policy.set_style``. The notes themselves are never touched (no
stuck note, nothing to release, no decision delayed): only what the policy is told changes. While the
transport is stopped a change applies at once (nothing plays to glide through). A policy swap re-resolves
the request against the new policy (a mood by name, the pad on its own plane, a latent of its length) and
applies it at once; a policy without the input ignores it, and the status says so (``style_dim`` 0).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from liveagent.live.engine.policy import Policy
from liveagent.live.style_rules import StyleError, StyleRequest, resolve

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]


def style_dim(policy: Policy) -> int:
    """D of the policy's ``style`` input, 0 when it has none (or cannot be steered)."""
    return policy.meta.style_dim if hasattr(policy, "set_style") else 0


class Glide:
    """Linear interpolation of ``z`` from ``start`` to ``target`` over ``steps`` steps, by absolute step.

    Preallocated: :meth:`at` writes into :attr:`z` and allocates nothing (the engine calls it every step of
    a glide, on the decision path)."""

    def __init__(self, dim: int) -> None:
        self.start: FloatArray = np.zeros(dim, dtype=np.float32)
        self.delta: FloatArray = np.zeros(dim, dtype=np.float32)
        self.z: FloatArray = np.zeros(dim, dtype=np.float32)
        self.k0 = 0
        self.steps = 1
        self.active = False

    def begin(self, start: FloatArray, target: Sequence[float], k0: int, steps: int) -> None:
        """Glide from ``start`` (now) to ``target``: step ``k0`` is the first step past ``start`` and step
        ``k0 + steps - 1`` plays ``target`` exactly."""
        self.start[:] = start
        self.delta[:] = target
        self.delta -= self.start
        self.z[:] = self.start
        self.k0, self.steps, self.active = k0, max(1, steps), True

    def fraction(self, k: int) -> float:
        """How far along the glide step ``k`` is: (k - k0 + 1) / steps, within 0..1."""
        return min(1.0, max(0.0, (k - self.k0 + 1) / self.steps))

    def at(self, k: int) -> FloatArray:
        """``z`` for step ``k`` (written into :attr:`z`); the glide ends at its last step."""
        f = self.fraction(k)
        np.multiply(self.delta, f, out=self.z)
        self.z += self.start
        if f >= 1.0:
            self.active = False
        return self.z


class StyleSteer:
    """The engine thread's style state: the request, the policy it applies to, the glide."""

    def __init__(self, policy: Policy) -> None:
        self.request = StyleRequest(mood=policy.meta.style_default)
        """What was asked for last (the policy's default mood until told otherwise)."""
        self.dim = 0
        self.glide = Glide(0)
        self.bind(policy)

    @property
    def gliding(self) -> bool:
        return self.glide.active

    def bind(self, policy: Policy) -> str:
        """A policy (at start or swapped in): re-apply the request to it at once, no glide. Returns ""
        or why the request could not be applied (then its default mood plays, or nothing: no style input)."""
        self.dim = style_dim(policy)
        if self.glide.z.shape[0] != self.dim:
            self.glide = Glide(self.dim)
        self.glide.active = False
        if not self.dim:
            return "" if not self.request.values and not self.request.mood else "ignored: no style input"
        try:
            z = resolve(policy.meta, self.request, policy.name)
        except StyleError as e:
            default = policy.meta.style_default
            self.request = StyleRequest(mood=default)
            z = policy.meta.moods.get(default, (0.0,) * self.dim)
            _set(policy, z)
            return f"{e}: {policy.name} plays {default or 'z = 0'}"
        _set(policy, z)
        return ""

    def change(self, policy: Policy, request: StyleRequest, k0: int | None, steps: int) -> None:
        """Steer to ``request`` (StyleError when it breaks a rule: nothing changes then). ``k0`` is the next
        step to decide (None while stopped: applied at once), ``steps`` the glide's length (a bar)."""
        z = resolve(policy.meta, request, policy.name)
        self.request = request
        current = _current(policy)
        if k0 is None or current is None:
            self.glide.active = False
            _set(policy, z)
            return
        self.glide.begin(current, z, k0, steps)

    def settle(self, policy: Policy) -> None:
        """The transport stopped or a new session starts: a glide in progress lands on its target at once
        (stopped, a style applies at once). Its steps count from the session it began in; a new session
        counts from its own start step, so a glide left running would hold the old ``z`` until the new
        session reached the old step (a review heard the mood stuck half-way for 6 bars after a restart)."""
        if self.glide.active:
            self.glide.active = False
            _set(policy, self.glide.start + self.glide.delta)

    def step(self, policy: Policy, k: int) -> None:
        """Before deciding step ``k``: the glide's ``z`` for it, to the policy (engine thread)."""
        if self.glide.active:
            _set(policy, self.glide.at(k))

    def snapshot(self, policy: Policy) -> dict[str, object]:
        """The status keys ``style_mood``, ``style``, ``style_gliding``, ``style_dim``."""
        z = _current(policy) if self.dim else None
        return {
            "style_mood": self.request.label(),
            "style": " ".join(f"{v:.2f}" for v in z) if z is not None else "",
            "style_gliding": int(self.glide.active),
            "style_dim": self.dim,
        }


def _current(policy: Policy) -> FloatArray | None:
    style = getattr(policy, "style", None)
    return style if isinstance(style, np.ndarray) else None


def _set(policy: Policy, z: Any) -> None:
    policy.set_style(z)  # type: ignore[attr-defined]


__all__ = ["Glide", "StyleError", "StyleRequest", "StyleSteer", "style_dim"]
