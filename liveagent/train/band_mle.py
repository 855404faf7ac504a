"""MLE for a band: one network learns Bach's alto, tenor and bass under the soprano (CleanRL style, one file).

Every step of every training chorale gives one sample per band voice: the soprano's window (follow mode:
it hears the soprano's step t), the voice's own past, the ``others`` rows (the real voices: the ones
decided before it in the step up to t, the rest up to t-1: ``build_band_observation`` in
:mod:`liveagent.music.band`)
and the voice's real token at t. Read :func:`train` top to bottom: config, data, network, loop, checkpoints.

Noise, as on stage: ``late_onset_prob`` hides the soprano's onset at t (a performer later than the follow
window), ``agent_noise`` corrupts past onsets of every band row (the other agents are policies, not Bach),
``key_change_prob`` puts the past of every row in another key (a performer who just transposed).
Batches are moved to random keys that keep every voice in its range.

Recipe tables: ``[net]`` (NetConfig; ``extra`` gets the band), ``[data]`` (DataConfig: chorales, soprano),
``[band]`` (BandMLEConfig).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as nnf

from liveagent.music.band import BandBuffers, BandSpec, build_band_observation
from liveagent.music.features import Mode, hears_current_step, hide_current_onsets
from liveagent.music.piece import Piece
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, Grid, pitch_range
from liveagent.train.band_net import BandNet
from liveagent.train.checkpoint import save_checkpoint, seed_everything
from liveagent.train.data import DataConfig, load_pieces, shift_rows_past, transpose_windows
from liveagent.train.logging_utils import PLOT_FILE, RunLogger, progress, set_threads
from liveagent.train.networks import NetConfig, param_count
from liveagent.train.plot import plot_curves
from liveagent.train.recipes import from_table, write_toml

log = logging.getLogger(__name__)

ALGO = "band_mle"


@dataclass
class BandMLEConfig:
    """The ``[band]`` table of a recipe."""

    band: str = "satb"
    """Which band (:data:`liveagent.music.band.BANDS`)."""
    terms: list[float] = field(default_factory=lambda: [1.0, 4.0, 2.0, 1.0])
    """Weights of the vertical terms in the graph (consonance, parallels, crossing, spacing with the
    other voices; :mod:`liveagent.train.band_net`), fixed while imitating."""
    others_recent: int = 16
    """Steps of every band row embedded slot by slot."""
    steps: int = 8000
    """Optimizer steps."""
    batch_size: int = 256
    """Samples per step (voices mixed)."""
    lr: float = 2e-3
    """Peak AdamW learning rate (warm-up, then cosine decay to 5 %)."""
    warmup: int = 200
    """Warm-up steps."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    agent_noise: float = 0.1
    """Share of past tokens of every band row corrupted per batch (the other agents are not Bach)."""
    late_onset_prob: float = 0.15
    """Share of the soprano's onsets at the decided step hidden (a performer later than the window)."""
    key_change_prob: float = 0.0
    """Share of samples whose past is in another key: every row's onsets before a cut in the last two bars
    move by 1-6 semitones either way, the soprano's and every voice's together (a performer who just
    modulated or transposed; the solo priors' ``key_change_prob``). Without it a band kept the old key for
    more than a bar after a tritone jump."""
    aux_weight: float = 0.5
    """Weight of the auxiliary loss on the soprano's next token (needs ``aux_head``)."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    log_every: int = 100
    """Log the training loss every N steps."""
    eval_every: int = 500
    """Validate and checkpoint every N steps."""
    max_minutes: float = 0.0
    """Stop after this wall time (0 = no limit); the best checkpoint so far is kept."""


@dataclass
class BandWindows:
    """Every (observation, target) of a set of pieces for every voice, ``uint8`` tokens, written keys."""

    performer: npt.NDArray[np.uint8]
    """[N, W] the soprano's window."""
    others: npt.NDArray[np.uint8]
    """[N, V, W] the band rows (the agent's own past is row ``voice``)."""
    voice: npt.NDArray[np.int64]
    position: npt.NDArray[np.int64]
    target: npt.NDArray[np.uint8]
    perf_next: npt.NDArray[np.uint8]
    shift_lo: npt.NDArray[np.int8]
    shift_hi: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.target.shape[0])


def band_pieces(pieces: list[Piece], spec: BandSpec) -> list[Piece]:
    """The pieces that hold every voice of the band (the chorales all do)."""
    return [p for p in pieces if p.has_voices(spec.voices)]


def voice_ranges(pieces: list[Piece], spec: BandSpec) -> tuple[tuple[int, int], ...]:
    """Each voice's lowest and highest pitch over ``pieces``."""
    out = []
    for v in spec.voices:
        spans = [r for r in (pitch_range(p.voices[v]) for p in pieces) if r is not None]
        out.append((min(s[0] for s in spans), max(s[1] for s in spans)))
    return tuple(out)


def _shifts(piece: Piece, spec: BandSpec, max_shift: int) -> tuple[int, int]:
    lo, hi = -max_shift, max_shift
    for v, (vlo, vhi) in zip(spec.voices, spec.ranges, strict=True):
        r = pitch_range(piece.voices[v])
        if r is not None:
            lo, hi = max(lo, vlo - r[0]), min(hi, vhi - r[1])
    r = pitch_range(piece.performer)
    if r is not None:
        lo, hi = max(lo, -r[0]), min(hi, 127 - r[1])
    return min(lo, 0), max(hi, 0)


def build_band_windows(
    pieces: list[Piece],
    spec: BandSpec,
    *,
    window: int,
    steps_per_bar: int,
    max_shift: int,
    mode: Mode = "follow",
) -> BandWindows:
    n_voices = spec.size
    total = sum(p.n_steps for p in pieces) * n_voices
    bw = BandWindows(
        performer=np.zeros((total, window), dtype=np.uint8),
        others=np.zeros((total, n_voices, window), dtype=np.uint8),
        voice=np.zeros(total, dtype=np.int64),
        position=np.zeros(total, dtype=np.int64),
        target=np.zeros(total, dtype=np.uint8),
        perf_next=np.zeros(total, dtype=np.uint8),
        shift_lo=np.zeros(total, dtype=np.int8),
        shift_hi=np.zeros(total, dtype=np.int8),
    )
    biggest = max(p.n_steps for p in pieces)
    buf = BandBuffers.allocate_band(biggest, window, n_voices)
    i = 0
    for p in pieces:
        n = p.n_steps
        lines = np.stack([p.voices[v] for v in spec.voices])
        obs = BandBuffers(buf.performer[:n], buf.agent[:n], buf.position[:n], buf.others[:n], buf.voice[:n])
        steps = np.arange(n, dtype=np.int64)
        lo, hi = _shifts(p, spec, max_shift)
        # The aux head's target: the soprano's first step not yet heard (t+1 following, t anticipating).
        nxt = np.concatenate((p.performer[1:], np.full(1, REST))) if hears_current_step(mode) else p.performer
        for v in range(n_voices):
            build_band_observation(p.performer, lines, v, steps, spec=spec, window=window,
                                   steps_per_bar=steps_per_bar, mode=mode, out=obs)  # fmt: skip
            sl = slice(i, i + n)
            bw.performer[sl] = obs.performer
            bw.others[sl] = obs.others
            bw.voice[sl] = v
            bw.position[sl] = obs.position
            bw.target[sl] = lines[v]
            bw.perf_next[sl] = nxt
            bw.shift_lo[sl], bw.shift_hi[sl] = lo, hi
            i += n
    return bw


@dataclass
class BandBatch:
    performer: torch.Tensor
    agent: torch.Tensor
    position: torch.Tensor
    others: torch.Tensor
    voice: torch.Tensor
    target: torch.Tensor
    perf_next: torch.Tensor


def _corrupt(tokens: npt.NDArray[np.int64], rng: np.random.Generator, share: float) -> None:
    """In place: ``share`` of the tokens become a neighbouring pitch (onsets) or a HOLD/REST swap."""
    hit = rng.random(tokens.shape) < share
    onset = tokens >= ONSET_BASE
    step = rng.choice(np.array([-2, -1, 1, 2]), size=tokens.shape)
    moved = np.clip(tokens + step, ONSET_BASE, ONSET_BASE + 127)
    swapped = np.where(tokens == HOLD, REST, HOLD)
    np.copyto(tokens, np.where(onset, moved, swapped), where=hit)


def sample_band_batch(
    bw: BandWindows,
    index: npt.NDArray[np.int64],
    *,
    transpose: bool,
    rng: np.random.Generator,
    agent_noise: float = 0.0,
    late_onset_prob: float = 0.0,
    key_change_prob: float = 0.0,
    key_change_steps: int = 32,
) -> BandBatch:
    perf = bw.performer[index].astype(np.int64)
    others = bw.others[index].astype(np.int64)
    voice = bw.voice[index]
    if agent_noise > 0.0:
        w = others.shape[2]
        # Only the past: a decided voice's step-t token is what that agent just played.
        _corrupt(others[:, :, : w - 1], rng, agent_noise)
    if key_change_prob > 0.0:
        shift_rows_past((perf, others), rng, key_change_prob, key_change_steps)
    if late_onset_prob > 0.0:
        hide_current_onsets(perf, rng.random(len(index)) < late_onset_prob)
    agent = others[np.arange(len(index)), voice]
    t = {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in (("p", perf), ("o", others), ("a", agent))}
    target = torch.from_numpy(bw.target[index].astype(np.int64))
    perf_next = torch.from_numpy(bw.perf_next[index].astype(np.int64))
    p, o, a = t["p"], t["o"], t["a"]
    if transpose:
        lo = bw.shift_lo[index].astype(np.int64)
        hi = bw.shift_hi[index].astype(np.int64)
        shift = torch.from_numpy(lo + np.floor(rng.random(len(index)) * (hi - lo + 1)).astype(np.int64))
        p, a, o = transpose_windows(p, shift), transpose_windows(a, shift), transpose_windows(o, shift)
        target, perf_next = transpose_windows(target, shift), transpose_windows(perf_next, shift)
    return BandBatch(
        p, a, torch.from_numpy(bw.position[index]), o, torch.from_numpy(voice), target, perf_next
    )


@torch.no_grad()
def evaluate(net: BandNet, bw: BandWindows, batch_size: int = 2048) -> dict[str, float]:
    """Validation loss (nats/step), accuracy, onset accuracy, over every voice."""
    net.eval()
    loss, correct, on_ok, ons = 0.0, 0, 0, 0
    rng = np.random.default_rng(0)
    for s in range(0, len(bw), batch_size):
        b = sample_band_batch(bw, np.arange(s, min(s + batch_size, len(bw))), transpose=False, rng=rng)
        logits = net(b.performer, b.agent, b.position, b.others, b.voice)
        loss += float(nnf.cross_entropy(logits, b.target, reduction="sum"))
        pred = logits.argmax(1)
        correct += int((pred == b.target).sum())
        on = b.target >= ONSET_BASE
        on_ok += int((pred[on] == b.target[on]).sum())
        ons += int(on.sum())
    net.train()
    return {"loss": loss / len(bw), "acc": correct / len(bw), "onset_acc": on_ok / max(ons, 1)}


def _lr(step: int, cfg: BandMLEConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train the band of ``recipe`` into ``out_dir``; return the best checkpoint's path."""
    # 1. Config.
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(recipe.get("seed", 1))
    set_threads(int(recipe.get("threads", 1)))
    seed_everything(seed)
    net_cfg = from_table(NetConfig, recipe.get("net"), "net")
    data_cfg = from_table(DataConfig, recipe.get("data"), "data")
    cfg = from_table(BandMLEConfig, recipe.get("band"), "band")
    if not hears_current_step(net_cfg.mode) and cfg.late_onset_prob > 0:
        # An anticipating band never sees the soprano's step t: there is no onset at t to hide.
        raise ValueError("[band] late_onset_prob: must be 0 for an anticipating band ([net] mode anticipate)")
    grid = Grid(net_cfg.steps_per_beat, net_cfg.beats_per_bar)
    write_toml(recipe, out / "recipe.toml")

    # 2. Data: the pieces with all voices; every voice's ranges; windows in the written keys.
    t0 = time.monotonic()
    spec = BandSpec.named(cfg.band)
    train_pieces = band_pieces(load_pieces(data_cfg, "train", grid), spec)
    valid_pieces = band_pieces(load_pieces(data_cfg, "valid", grid), spec)
    spec = dataclasses.replace(spec, ranges=voice_ranges(train_pieces, spec))
    max_shift = data_cfg.max_shift if data_cfg.transpose else 0
    w, spbar = net_cfg.window, grid.steps_per_bar
    mode = net_cfg.mode
    train_bw = build_band_windows(
        train_pieces, spec, window=w, steps_per_bar=spbar, max_shift=max_shift, mode=mode
    )
    valid_bw = build_band_windows(valid_pieces, spec, window=w, steps_per_bar=spbar, max_shift=0, mode=mode)
    lo, hi = min(r[0] for r in spec.ranges), max(r[1] for r in spec.ranges)
    extra = dict(net_cfg.extra) | {"band": spec.to_json(), "band_terms": list(cfg.terms),
                                   "others_recent": cfg.others_recent}  # fmt: skip
    net_cfg = dataclasses.replace(net_cfg, pitch_min=lo, pitch_max=hi, part="band:" + cfg.band, extra=extra)
    log.info(
        "data: %d train pieces (%d samples), %d valid (%d), ranges %s, built in %.1fs",
        len(train_pieces), len(train_bw), len(valid_pieces), len(valid_bw),
        dict(zip(spec.voices, spec.ranges, strict=True)), time.monotonic() - t0,
    )  # fmt: skip

    # 3. Network and optimizer (the vertical terms' weights stay as the recipe set them).
    net = BandNet(net_cfg)
    fixed = ("ec_weight", "parallel_weight", "band_weights")
    opt = torch.optim.AdamW(
        [p for name, p in net.named_parameters() if name not in fixed],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    rng = np.random.default_rng(seed)
    step, best_loss = 0, float("inf")
    best, last = out / "best.pt", out / "last.pt"
    log.info("network: %d parameters, %s", param_count(net), net_cfg)
    if resume:
        log.warning("band_mle does not resume: starting over")

    # 4. The loop.
    metrics: dict[str, Any] = {}
    start = time.monotonic()
    net.train()
    with RunLogger(out) as runlog, progress(cfg.steps, desc="band_mle") as bar:
        while step < cfg.steps:
            idx = rng.integers(0, len(train_bw), size=cfg.batch_size)
            b = sample_band_batch(
                train_bw, idx, transpose=max_shift > 0, rng=rng, agent_noise=cfg.agent_noise,
                late_onset_prob=cfg.late_onset_prob, key_change_prob=cfg.key_change_prob,
                key_change_steps=2 * spbar,
            )  # fmt: skip
            for group in opt.param_groups:
                group["lr"] = _lr(step, cfg)
            logits, _, aux = net.band_forward(b.performer, b.agent, b.position, b.others, b.voice)
            loss = nnf.cross_entropy(logits, b.target)
            if aux is not None and cfg.aux_weight > 0:
                loss = loss + cfg.aux_weight * nnf.cross_entropy(aux, b.perf_next)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
                runlog.log(step, "train", loss=loss.item(), lr=_lr(step, cfg))
            out_of_time = cfg.max_minutes > 0 and time.monotonic() - start > 60 * cfg.max_minutes
            if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
                # 5. Validate, checkpoint (best for export, last for the record).
                v = evaluate(net, valid_bw)
                runlog.log(step, "valid", loss=v["loss"], acc=v["acc"], onset_acc=v["onset_acc"])
                metrics = {f"valid_{k}": round(x, 5) for k, x in v.items()} | {"step": step}
                if v["loss"] < best_loss:
                    best_loss = v["loss"]
                    save_checkpoint(best, net=net, algo=ALGO, step=step, recipe=recipe, metrics=metrics)
                save_checkpoint(last, net=net, algo=ALGO, step=step, recipe=recipe, metrics=metrics)
                if out_of_time:
                    log.warning("band_mle: time budget of %.1f min reached at step %d", cfg.max_minutes, step)
                    break
    plot_curves(out / "metrics.jsonl", out / PLOT_FILE, title=f"band_mle: {recipe.get('name', out.name)}")
    log.info("band_mle done: best valid loss %.4f, %.1f min", best_loss, (time.monotonic() - start) / 60)
    return best if best.exists() else last
