"""The rules of a style request (contract-1.2 policies), in one place: what ``/liveagent/style``,
``/liveagent/mood``, the MIDI pad CCs and ``serve --mood`` may ask for.

A request is a mood name, the latent ``z`` itself (D numbers), or a point ``x y`` of the 2-D pad in [-1, 1]^2,
mapped onto the latent's main plane: ``z = origin + x * pc1 + y * pc2`` (the metadata ``style_axes``; the
pad's corners are the +-1 ends of the axes the README's sweeps measure). :func:`check_values` is the
context-free part (numbers, finite, how many: the OSC input applies it, so a NaN never reaches the engine);
:func:`resolve` the rest, against the policy playing (a policy without a ``style`` input, the count, the
range, an unknown mood), on the engine thread. Errors are :class:`StyleError`, whose message says which rule
broke and whose ``kind`` is the counter it goes to.

Beside :mod:`liveagent.live.events` (and like it, importing nothing of the engine or the wires): the inputs
(io) and the engine both use it. The glide lives in :mod:`liveagent.live.engine.style`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from liveagent.live.engine.policy_contract import PolicyMeta

PAD_LIMIT = 1.0
"""The pad's coordinates are in [-PAD_LIMIT, PAD_LIMIT] (the axes' measured range)."""
LATENT_LIMIT = 10.0
"""A latent value beyond this is refused: the VAE's prior is N(0, 1), the moods sit within +-1.3, and ten
standard deviations out the policy was never trained (it would play noise)."""
MAX_VALUES = 64
"""The most numbers a style request may carry (the largest latent a policy may declare is far smaller)."""
PAD_AXES = ("pc1", "pc2")
"""The ``style_axes`` that span the pad (x, y)."""
CUSTOM = "custom"
"""The status's ``style_mood`` for a latent or pad point that is no mood."""


class StyleError(ValueError):
    """A request that breaks a rule; ``kind`` names it (arity, nonfinite, range, type, mood, nostyle)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class StyleRequest:
    """What the performer asked for: a ``mood`` name, or ``values`` (a latent, or a pad ``x y``)."""

    mood: str = ""
    values: tuple[float, ...] = ()

    def label(self) -> str:
        """The status's ``style_mood``: the mood's name, "custom" for numbers, "none" for no request."""
        return self.mood or (CUSTOM if self.values else "none")


def check_values(values: Sequence[Any], what: str = "style") -> tuple[float, ...]:
    """The context-free rules: 1..:data:`MAX_VALUES` numbers (no booleans), all finite. Raises StyleError."""
    if not 1 <= len(values) <= MAX_VALUES:
        raise StyleError("arity", f"{what}: expects 2 (pad x y) or D (the latent) numbers, got {len(values)}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise StyleError("type", f"{what}: value {i + 1} must be a number, got {type(v).__name__}")
        f = float(v)
        if not math.isfinite(f):
            raise StyleError("nonfinite", f"{what}: value {i + 1} is not finite ({f})")
        out.append(f)
    return tuple(out)


MAX_MOOD_NAME = 64
"""The longest mood name a request may carry (the shipped moods are short words)."""


def clean_mood_name(name: Any) -> str:
    """A mood name as every door takes it (``/liveagent/mood``, ``serve --mood``, ``demo --mood``): stray
    spaces stripped; :class:`StyleError` (kind ``type``) for a non-string, a blank, a NUL or one longer than
    :data:`MAX_MOOD_NAME`. Whether the policy has that mood is :func:`resolve`'s question."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_MOOD_NAME or "\0" in name:
        raise StyleError("type", "expects a mood name (a word), e.g. calm, busy, neutral")
    return name.strip()


def mood_arg(text: str) -> str:
    """``--mood`` (serve, demo) by :func:`clean_mood_name`'s rules, for argparse (``type=``): a launcher's
    empty ``$MOOD`` is an error, as an empty ``/liveagent/mood`` is, not a silent default."""
    import argparse

    try:
        return clean_mood_name(text)
    except StyleError as e:
        shown = text if len(text) <= MAX_MOOD_NAME else text[:MAX_MOOD_NAME] + "..."
        raise argparse.ArgumentTypeError(f"{shown!r}: {e}") from None


def has_pad(meta: PolicyMeta) -> bool:
    """Whether the policy declares the pad's plane (``style_axes`` pc1 and pc2)."""
    return all(a in meta.style_axes for a in PAD_AXES)


def _no_style(meta: PolicyMeta, name: str) -> StyleError:
    return StyleError(
        "nostyle",
        f"policy {name} has no style input (contract 1.2): style and mood need a style policy "
        "(e.g. --policy style or /liveagent/policy style)",
    )


def resolve(meta: PolicyMeta, request: StyleRequest, name: str = "policy") -> tuple[float, ...]:
    """The latent ``z`` a request means for a policy of ``meta``; StyleError says what is wrong.

    Two numbers are the pad when the policy has one (even if its latent has two dimensions: the pad is
    what a controller sends); otherwise a request must carry exactly ``style_dim`` numbers."""
    dim = meta.style_dim
    if dim <= 0:
        raise _no_style(meta, name)
    if request.mood:
        z = meta.moods.get(request.mood)
        if z is None:
            known = ", ".join(sorted(meta.moods)) or "none"
            raise StyleError("mood", f"mood: unknown mood {request.mood!r} (policy {name} has: {known})")
        return z
    values = check_values(request.values)
    pad = has_pad(meta)
    if len(values) == 2 and pad:
        for axis, v in zip("xy", values, strict=True):
            if not -PAD_LIMIT <= v <= PAD_LIMIT:
                raise StyleError("range", f"style: pad {axis} {v:g} outside -{PAD_LIMIT:g}..{PAD_LIMIT:g}")
        (o1, d1), (_, d2) = meta.style_axes[PAD_AXES[0]], meta.style_axes[PAD_AXES[1]]
        x, y = values
        return tuple(o + x * a + y * b for o, a, b in zip(o1, d1, d2, strict=True))
    if len(values) != dim:
        want = (
            f"2 (pad x y) or {dim} (the latent z)" if pad else f"{dim} (the latent z; this policy has no pad)"
        )
        raise StyleError("arity", f"style: policy {name} needs {want} numbers, got {len(values)}")
    for i, v in enumerate(values):
        if not -LATENT_LIMIT <= v <= LATENT_LIMIT:
            raise StyleError(
                "range", f"style: latent value {i + 1} = {v:g} outside -{LATENT_LIMIT:g}..{LATENT_LIMIT:g}"
            )
    return values


__all__ = [
    "CUSTOM",
    "LATENT_LIMIT",
    "MAX_MOOD_NAME",
    "MAX_VALUES",
    "PAD_AXES",
    "PAD_LIMIT",
    "StyleError",
    "StyleRequest",
    "check_values",
    "clean_mood_name",
    "has_pad",
    "mood_arg",
    "resolve",
]
