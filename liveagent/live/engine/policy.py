"""Policies for the live engine: contract-v1 ONNX files run by onnxruntime, and the rules accompanist.

A policy is any callable ``policy(obs: ObservationBuffers) -> float32 [B, 130]`` with a ``meta``
(:class:`PolicyMeta`) and a ``name``. :func:`load_policy` resolves ``"rules"``, a name in the installed
``liveagent.export`` package (``export/NAME.onnx`` in the repository) or a path. A file that breaks the
contract is refused with a :class:`PolicyError` that says what is wrong, before it can reach the stage;
the contract itself (the metadata, the graph's inputs and outputs) is checked in
:mod:`liveagent.live.engine.policy_contract`, whose names are re-exported here.

The session is tuned for single-sample latency: one intra-op and one inter-op thread (no pool to wake),
full graph optimization, sequential execution; the input arrays are the engine's preallocated
:class:`~liveagent.music.features.ObservationBuffers` and a preallocated output, bound once with an
IOBinding that reads and writes that memory in place (no per-call allocation).
Nothing here imports torch.
"""

from __future__ import annotations

import importlib.resources
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from liveagent.live.engine.policy_contract import (
    BAND_INPUTS,
    CONTRACT_VERSION,
    INPUTS,
    REQUIRED_META,
    STYLE_INPUT,
    PolicyError,
    PolicyMeta,
    check_io,
)
from liveagent.music.band import BandBuffers
from liveagent.music.features import Mode, ObservationBuffers
from liveagent.music.tokens import VOCAB_SIZE, Grid

FloatArray = npt.NDArray[np.float32]
MAX_POLICY_BYTES = 64 * 1024 * 1024
"""The largest policy file loaded (the shipped ones are under 3 MB). onnxruntime parses a model from bytes
holding the GIL the whole time, so a 1 GB file sent with ``/liveagent/policy`` froze the engine thread for
seconds (65 misses) and a 4 GB one took 8 GB of memory; a bigger file is refused before it is read."""


class Policy(Protocol):
    """What the engine needs from a policy."""

    name: str
    meta: PolicyMeta

    def __call__(self, obs: ObservationBuffers) -> FloatArray: ...


def export_dir() -> Path:
    """The installed ``liveagent.export`` package folder (the repository's export/)."""
    return Path(str(importlib.resources.files("liveagent.export")))


def available_policies() -> list[str]:
    """Names ``--policy`` accepts: ``rules`` and every NAME.onnx in the export package."""
    try:
        names = sorted(p.stem for p in export_dir().glob("*.onnx"))
    except (ModuleNotFoundError, OSError):
        names = []
    return ["rules", *names]


def resolve_policy_path(name_or_path: str | Path) -> Path:
    """A path as given, or ``NAME`` -> ``export/NAME.onnx``; :class:`PolicyError` when neither exists."""
    raw = str(name_or_path)
    path = Path(raw).expanduser()
    looks_like_path = path.suffix == ".onnx" or "/" in raw or "\\" in raw
    if looks_like_path or path.exists():
        if not path.is_file():
            raise PolicyError(f"policy file not found: {path}")
        return path
    try:
        candidate = export_dir() / f"{raw}.onnx"
    except ModuleNotFoundError:
        candidate = None
    if candidate is not None and candidate.is_file():
        return candidate
    raise PolicyError(f"unknown policy {raw!r}: not a file, and not one of {', '.join(available_policies())}")


def read_policy_file(path: Path, limit: int = MAX_POLICY_BYTES) -> bytes:
    """The bytes of a policy file, checked on the opened file (``fstat``: a regular file of at most
    ``limit`` bytes) before anything is read, and never more than ``limit`` bytes read. Raises
    :class:`PolicyError` ("policy file too large: N MB > 64 MB").

    A loader in a child process (killable, its memory its own) would also bound the parse time of a
    malicious model under the limit; it is out of scope here: the size bound is what keeps the GIL stall
    short (measured: a 1 GB file froze the engine for ~2 s).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except OSError as e:
        raise PolicyError(f"cannot open policy file {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PolicyError(f"policy file not found: {path} is not a regular file")
        if st.st_size > limit:
            raise PolicyError(
                f"policy file too large: {st.st_size / 2**20:.0f} MB > {limit / 2**20:.0f} MB ({path})"
            )
        data = f.read(limit + 1)
    if len(data) > limit:  # grew between the fstat and the read
        raise PolicyError(f"policy file too large: more than {limit / 2**20:.0f} MB ({path})")
    return data


def _session_options() -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


class OnnxPolicy:
    """A contract-v1 ONNX policy on one onnxruntime session (build with :meth:`load`)."""

    def __init__(self, session: Any, meta: PolicyMeta, name: str, path: Path | None = None) -> None:
        self.session = session
        self.meta = meta
        self.name = name
        self.path = path
        self._bound: ObservationBuffers | None = None
        self._io: Any = None
        self._arrays: tuple[Any, ...] = ()
        self._out: FloatArray = np.zeros((1, VOCAB_SIZE), dtype=np.float32)
        d = meta.style_dim
        default = meta.moods.get(meta.style_default, (0.0,) * d)
        self._style: FloatArray = np.asarray(default, dtype=np.float32).reshape(1, d)
        """The style latent fed to every row (contract 1.2; shape [1, 0] for a policy without it)."""
        self._style_rows: FloatArray = self._style.copy()

    @property
    def style(self) -> FloatArray:
        """The style latent ``[D]`` fed now (empty for a policy without a ``style`` input)."""
        return self._style[0]

    def set_style(self, z: Any) -> None:
        """Feed ``z`` (D numbers) as the ``style`` input from the next call on; in place, no re-binding.
        Raises ValueError for a wrong length or a non-finite value (the previous style stays)."""
        arr = np.asarray(z, dtype=np.float32).reshape(-1)
        if arr.shape[0] != self.meta.style_dim or not np.isfinite(arr).all():
            raise ValueError(
                f"{self.name}: style needs {self.meta.style_dim} finite numbers, got {arr.tolist()}"
            )
        self._style[0] = arr
        self._style_rows[:] = self._style

    def set_mood(self, name: str) -> FloatArray:
        """Feed the mood ``name`` of the metadata; returns its ``z``. KeyError names the known moods."""
        if name not in self.meta.moods:
            raise KeyError(
                f"{self.name}: no mood {name!r} (has {', '.join(sorted(self.meta.moods)) or 'none'})"
            )
        self.set_style(self.meta.moods[name])
        return self.style

    def _feed(self, obs: ObservationBuffers) -> dict[str, Any]:
        feed: dict[str, Any] = dict(obs.as_feed())
        if self.meta.style_dim:
            b = obs.position.shape[0]
            if self._style_rows.shape[0] != b:
                self._style_rows = np.repeat(self._style, b, axis=0)
            feed[STYLE_INPUT] = self._style_rows
        return feed

    @classmethod
    def load(cls, name_or_path: str | Path) -> OnnxPolicy:
        """Load and validate; :class:`PolicyError` says what is wrong with a file that breaks the contract."""
        path = resolve_policy_path(name_or_path)
        return cls.from_bytes(read_policy_file(path), name=path.stem, path=path)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "policy", path: Path | None = None) -> OnnxPolicy:
        import onnxruntime as ort

        src = str(path) if path is not None else name
        if not data:
            raise PolicyError(f"{src}: empty file")
        try:
            session = ort.InferenceSession(
                data, sess_options=_session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises several private exception types for bad files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PolicyError(f"{src}: not a loadable ONNX model ({first[:300]})") from None
        props = dict(session.get_modelmeta().custom_metadata_map)
        meta = PolicyMeta.from_props(props, src)
        check_io(session, meta, src)
        policy = cls(session, meta, name, path)
        policy._smoke_test(src)
        return policy

    def _bind(self, obs: ObservationBuffers) -> None:
        """Bind the caller's buffers and a preallocated output once (IOBinding: no copy, no allocation).

        onnxruntime reads the numpy memory in place, so the engine updating ``obs`` in place is all a
        call needs; measured ~40% faster than ``session.run`` on a tiny graph. Buffers that are not
        C-contiguous int64 fall back to ``session.run``.
        """
        feed = self._feed(obs)
        self._bound = obs
        self._arrays = tuple(feed.values())
        contract = (obs.performer, obs.agent, obs.position)  # the style buffer is ours: float32, contiguous
        if not all(a.dtype == np.int64 and a.flags.c_contiguous for a in contract):
            self._io = None
            return
        b = obs.position.shape[0]
        out = np.zeros((b, VOCAB_SIZE), dtype=np.float32)
        io = self.session.io_binding()
        for name, arr in feed.items():
            io.bind_cpu_input(name, arr)
        io.bind_output("logits", "cpu", 0, np.float32, [b, VOCAB_SIZE], out.ctypes.data)
        self._io = io
        self._out = out

    def __call__(self, obs: ObservationBuffers) -> FloatArray:
        """Logits ``[B, 130]`` for ``obs``. The returned array is reused by the next call: consume it."""
        a = self._arrays
        if (
            obs is not self._bound
            or obs.performer is not a[0]
            or obs.agent is not a[1]
            or obs.position is not a[2]
        ):
            self._bind(obs)
        if self._io is None:
            return self.session.run(["logits"], self._feed(obs))[0]  # type: ignore[no-any-return]
        self.session.run_with_iobinding(self._io)
        return self._out

    def warm(self) -> None:
        """Run the graph once on the buffers bound by the last call, the result discarded (the next call
        overwrites the output): the engine's prefetch before a decision. No allocation, no state changed
        (nothing before the first call is bound: then a no-op).

        Why: after the engine's idle between steps (62.5 ms at 240 BPM) the weights (1.8 MB), the arena
        and the kernels' code are out of the caches, and a call costs ~3x a call in a tight loop
        (measured in a real ``serve``, loaded machine: p50 1.1 ms vs 0.3 ms); the first calls after an idle
        are slow, the third is back to the tight loop's figure."""
        if self._io is not None:
            self.session.run_with_iobinding(self._io)

    def observation(self, batch: int = 1) -> ObservationBuffers:
        """Buffers this policy can be fed (with ``others`` and ``voice`` for a band policy)."""
        band = self.meta.band
        if band is None:
            return ObservationBuffers.allocate(batch, self.meta.window)
        return BandBuffers.allocate_band(batch, self.meta.window, band.size)

    def _smoke_test(self, src: str) -> None:
        obs = self.observation()
        try:
            out = self.session.run(["logits"], self._feed(obs))[0]
        except Exception as e:  # a graph that loads but cannot run on contract inputs
            raise PolicyError(
                f"{src}: fails on a contract-v1 input ({str(e).splitlines()[0][:300]})"
            ) from None
        if out.dtype != np.float32 or out.shape != (1, VOCAB_SIZE):
            raise PolicyError(
                f"{src}: logits came back {out.dtype} {list(out.shape)}, need float32 [1, {VOCAB_SIZE}]"
            )
        if not np.isfinite(out).any():
            raise PolicyError(f"{src}: logits are all non-finite on an empty history")


class RulesPolicy:
    """The rules accompanist (``liveagent.music.rules``) behind the policy interface: ``--policy rules``.

    It lets the engine play before a trained default lands, and is a baseline on stage.
    """

    def __init__(
        self,
        *,
        grid: Grid | None = None,
        pitch_min: int | None = None,
        pitch_max: int | None = None,
        mode: Mode = "anticipate",
        window: int | None = None,
    ) -> None:
        try:
            from liveagent.music.rules import RulesAccompanist
        except ImportError as e:
            raise PolicyError(f"rules policy unavailable: {e}") from None
        g = grid or Grid()
        # The range defaults are the accompanist's own, written in one place.
        kwargs: dict[str, Any] = {"steps_per_bar": g.steps_per_bar, "steps_per_beat": g.steps_per_beat}
        if pitch_min is not None:
            kwargs["pitch_min"] = pitch_min
        if pitch_max is not None:
            kwargs["pitch_max"] = pitch_max
        impl = RulesAccompanist(mode=mode, **kwargs)
        self._impl: Callable[[ObservationBuffers], Any] = impl
        w = window or int(getattr(impl, "window", 0) or 32)
        self.name = "rules"
        self.meta = PolicyMeta(
            steps_per_beat=g.steps_per_beat,
            beats_per_bar=g.beats_per_bar,
            window=w,
            mode=mode,
            part="bass",
            pitch_min=impl.pitch_min,
            pitch_max=impl.pitch_max,
            algo="rules",
            dataset="",
        )

    def __call__(self, obs: ObservationBuffers) -> FloatArray:
        return np.asarray(self._impl(obs), dtype=np.float32)


class CallablePolicy:
    """Wrap any numpy callable ``obs -> logits`` with a meta (tests, research prototypes)."""

    def __init__(
        self, fn: Callable[[ObservationBuffers], Any], meta: PolicyMeta, name: str = "callable"
    ) -> None:
        self.fn = fn
        self.meta = meta
        self.name = name

    def __call__(self, obs: ObservationBuffers) -> FloatArray:
        return np.asarray(self.fn(obs), dtype=np.float32)


def load_policy(name_or_path: str | Path) -> Policy:
    """``"rules"``, an export name, or a path; raises :class:`PolicyError` with the reason."""
    if str(name_or_path) == "rules":
        return RulesPolicy()
    return OnnxPolicy.load(name_or_path)


__all__ = [
    "BAND_INPUTS",
    "CONTRACT_VERSION",
    "INPUTS",
    "MAX_POLICY_BYTES",
    "REQUIRED_META",
    "STYLE_INPUT",
    "CallablePolicy",
    "OnnxPolicy",
    "Policy",
    "PolicyError",
    "PolicyMeta",
    "RulesPolicy",
    "available_policies",
    "export_dir",
    "load_policy",
]
