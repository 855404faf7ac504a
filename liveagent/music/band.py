"""A band: several accompanying voices under the performer, each hearing the performer and the others.

The contract's band addition (``export/README.md``): a band policy plays every voice of a
:class:`BandSpec` with one network, called once per voice per step, in the spec's decision ``order``
(the bass first: the foundation; then the voices above it). Besides v1's inputs it takes

- ``others`` int64 [B, V, W]: every band voice's line (top-down, its own included). Row ``j`` ends at the
  decided step t when voice ``j`` decides before the voice being decided (its step-t token is known:
  the voices of one step are decided in order), else at t-1, like the agent's own window;
- ``voice`` int64 [B]: the index of the voice being decided (top-down: 0 = alto in ``satb``).

The same builder fills these in training (:func:`build_band_observation`, the corpus's real voices as
the other agents' past: teacher forcing) and live (:class:`BandStream`, the other agents' own tokens), so
training and playing see the same arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from liveagent.music.features import (
    Mode,
    ObservationBuffers,
    StreamingObservation,
    build_observation,
)
from liveagent.music.tokens import REST

Int64Array = npt.NDArray[np.int64]

BANDS: dict[str, tuple[str, ...]] = {"satb": ("alto", "tenor", "bass")}
"""Named bands (``--band NAME``): the voices under the performer, top-down."""


@dataclass(frozen=True)
class BandSpec:
    """The voices of a band, top-down, the order they are decided in within a step, and their ranges."""

    voices: tuple[str, ...]
    order: tuple[str, ...]
    """Decision order within a step (a permutation of ``voices``): the bass first by default."""
    ranges: tuple[tuple[int, int], ...]
    """Each voice's trained pitch range (top-down, as ``voices``): the engine's per-voice range mask."""

    def __post_init__(self) -> None:
        if not self.voices or len(set(self.voices)) != len(self.voices):
            raise ValueError(f"band voices must be distinct and non-empty, got {self.voices}")
        if sorted(self.order) != sorted(self.voices):
            raise ValueError(f"band order {self.order} must be a permutation of {self.voices}")
        if len(self.ranges) != len(self.voices):
            raise ValueError(f"band needs one range per voice, got {len(self.ranges)} for {self.voices}")
        for lo, hi in self.ranges:
            if not 0 <= lo <= hi <= 127:
                raise ValueError(f"bad band range {lo}..{hi}")

    @classmethod
    def named(cls, name: str, ranges: tuple[tuple[int, int], ...] | None = None) -> BandSpec:
        """The band ``name`` (``satb``), decided bottom-up."""
        if name not in BANDS:
            raise ValueError(f"unknown band {name!r} (known: {', '.join(BANDS)})")
        voices = BANDS[name]
        return cls(voices, tuple(reversed(voices)), ranges or ((0, 127),) * len(voices))

    @property
    def size(self) -> int:
        return len(self.voices)

    @property
    def order_index(self) -> tuple[int, ...]:
        """The decision order as voice indices (top-down indices)."""
        return tuple(self.voices.index(v) for v in self.order)

    def decided_before(self) -> npt.NDArray[np.bool_]:
        """``[V, V]``: ``[v, j]`` is True when voice ``j`` is decided before voice ``v`` within a step."""
        rank = {v: i for i, v in enumerate(self.order)}
        n = self.size
        return np.array(
            [[rank[self.voices[j]] < rank[self.voices[v]] for j in range(n)] for v in range(n)], dtype=bool
        )

    def to_json(self) -> str:
        """The metadata ``band`` (JSON): voices, order and ranges."""
        return json.dumps({"voices": list(self.voices), "order": list(self.order), "ranges": self.ranges})

    @classmethod
    def from_json(cls, text: str) -> BandSpec:
        """Parse the metadata ``band``; ValueError (with what is wrong) for anything malformed."""
        try:
            raw = json.loads(text)
            voices = tuple(str(v) for v in raw["voices"])
            order = tuple(str(v) for v in raw["order"])
            ranges = tuple((int(r[0]), int(r[1])) for r in raw["ranges"])
        except (ValueError, KeyError, TypeError, IndexError, OverflowError, RecursionError) as e:
            raise ValueError(f"metadata band is not a band spec ({type(e).__name__}: {e})") from None
        return cls(voices, order, ranges)


@dataclass
class BandBuffers(ObservationBuffers):
    """The contract arrays of a band decision (v1's three plus ``others`` and ``voice``), caller-owned."""

    others: Int64Array = field(default_factory=lambda: np.zeros((0, 0, 0), dtype=np.int64))
    """[B, V, W]: every band voice's line (see the module docstring for where each row ends)."""
    voice: Int64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """[B]: the index (top-down) of the voice being decided."""

    @classmethod
    def allocate_band(cls, batch: int, window: int, voices: int) -> BandBuffers:
        return cls(
            performer=np.zeros((batch, window), dtype=np.int64),
            agent=np.zeros((batch, window), dtype=np.int64),
            position=np.zeros(batch, dtype=np.int64),
            others=np.zeros((batch, voices, window), dtype=np.int64),
            voice=np.zeros(batch, dtype=np.int64),
        )

    def as_feed(self) -> dict[str, Int64Array]:
        return super().as_feed() | {"others": self.others, "voice": self.voice}


def build_band_observation(
    performer: npt.ArrayLike,
    lines: npt.ArrayLike,
    voice: int,
    t: npt.ArrayLike,
    *,
    spec: BandSpec,
    window: int,
    steps_per_bar: int,
    mode: Mode = "follow",
    out: BandBuffers,
) -> BandBuffers:
    """Fill ``out`` with voice ``voice``'s observation at step(s) ``t`` from whole lines.

    ``performer`` is ``[T]`` or ``[B, T]`` and ``lines`` ``[V, T]`` or ``[B, V, T]`` (every band voice
    top-down; one piece at many steps, or many pieces at their own steps); rows of ``out`` follow ``t``.
    The agent's window is ``lines[voice]`` up to t-1; ``others`` row ``j`` ends at t when ``j`` decides
    before ``voice`` (:meth:`BandSpec.decided_before`), else at t-1. Entries the decision may not know
    are never read, so the lines may hold the future.
    """
    steps = np.atleast_1d(np.asarray(t, dtype=np.int64))
    n = steps.shape[0]
    lines_ = np.asarray(lines, dtype=np.int64)
    n_steps = lines_.shape[-1]
    if lines_.ndim == 2:
        lines_ = np.broadcast_to(lines_, (n, *lines_.shape))
    perf = np.broadcast_to(np.asarray(performer, dtype=np.int64), (n, n_steps))
    build_observation(perf, lines_[:, voice], steps, window=window, steps_per_bar=steps_per_bar, mode=mode,
                      out=out)  # fmt: skip
    decided = spec.decided_before()[voice]
    offsets = np.arange(-window, 0, dtype=np.int64)
    for j in range(spec.size):
        idx = steps[:, None] + offsets + (1 if decided[j] else 0)
        valid = (idx >= 0) & (idx < n_steps)
        got = np.take_along_axis(lines_[:, j], np.clip(idx, 0, n_steps - 1), axis=1)
        np.copyto(out.others[:, j], np.where(valid, got, REST))
    out.voice.fill(voice)
    return out


class BandStream:
    """The live engine's band observation: one :class:`StreamingObservation` per voice (each with the
    performer's line), and the voices decided so far in the current step.

    ``fill(out, t, v, pending)`` writes voice ``v``'s observation for step ``t`` into row 0 of ``out``:
    ``pending[j]`` is voice ``j``'s step-t token for the voices decided before ``v``. No allocation.
    """

    def __init__(self, spec: BandSpec, *, window: int, steps_per_bar: int, mode: Mode = "follow") -> None:
        self.spec = spec
        self.window = window
        self.streams = [
            StreamingObservation(window=window, steps_per_bar=steps_per_bar, mode=mode) for _ in spec.voices
        ]
        self._decided = spec.decided_before()

    def reset(self) -> None:
        for s in self.streams:
            s.reset()

    @property
    def performer_steps(self) -> int:
        return self.streams[0].performer_steps

    @property
    def agent_steps(self) -> int:
        return self.streams[0].agent_steps

    def push_performer(self, token: int) -> None:
        for s in self.streams:
            s.push_performer(token)

    def amend_performer(self, step: int, token: int) -> None:
        for s in self.streams:
            s.amend_performer(step, token)

    def push_all(self, token: int) -> None:
        """Append the same token to every voice (REST before a session's first step)."""
        for s in self.streams:
            s.push_agent(token)

    def push_agents(self, tokens: Int64Array) -> None:
        """Append step t's token of every voice (top-down)."""
        for s, tok in zip(self.streams, tokens, strict=True):
            s.push_agent(int(tok))

    def fill(self, out: BandBuffers, t: int, voice: int, pending: Int64Array) -> BandBuffers:
        self.streams[voice].fill(out, t)
        decided = self._decided[voice]
        w = self.window
        for j, s in enumerate(self.streams):
            past = s.agent_window(t)
            if decided[j]:
                out.others[0, j, : w - 1] = past[1:]
                out.others[0, j, w - 1] = pending[j]
            else:
                out.others[0, j] = past
        out.voice[0] = voice
        return out
