"""MLE prior: supervised next-token training of the online accompanist (CleanRL style, one file).

The policy sees what it will see live (the shared observation builder; in anticipate mode never the
performer's note at t) with the real accompaniment as its own past, and learns to predict the real
accompaniment token at t. Read :func:`train` top to bottom: config, data, network, loop, checkpoints.

Recipe tables: ``[net]`` (NetConfig), ``[data]`` (DataConfig), ``[mle]`` (MLEConfig), top-level ``seed``
and ``threads``. Outputs in ``out_dir``: ``metrics.jsonl``, ``curves.png``, ``last.pt`` (resume),
``best.pt`` (lowest validation loss; what :func:`train` returns and what gets exported).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as nnf

from liveagent.music.tokens import ONSET_BASE, Grid
from liveagent.train.checkpoint import load_checkpoint, restore_rng, save_checkpoint, seed_everything
from liveagent.train.data import (
    DataConfig,
    WindowSet,
    accompaniment_range,
    build_windows,
    load_pieces,
    sample_batch,
    sample_training_batch,
)
from liveagent.train.logging_utils import PLOT_FILE, RunLogger, progress, set_threads
from liveagent.train.networks import NetConfig, PolicyNet, param_count
from liveagent.train.plot import plot_curves
from liveagent.train.recipes import from_table, write_toml

log = logging.getLogger(__name__)

ALGO = "mle"


@dataclass
class MLEConfig:
    """The ``[mle]`` table of a recipe."""

    steps: int = 6000
    """Optimizer steps."""
    batch_size: int = 256
    """Windows per step."""
    lr: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to 5% of it)."""
    warmup: int = 200
    """Warm-up steps."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing."""
    agent_noise: float = 0.03
    """Fraction of the agent's past tokens corrupted per batch (robustness to its own slips)."""
    aux_weight: float = 0.5
    """Weight of the auxiliary loss: cross-entropy of the performer's next token (needs ``aux_head``)."""
    late_onset_prob: float = 0.0
    """Follow/react: share of the performer's onsets at the decided step hidden from the window (the
    performer later than the follow window), as :class:`~liveagent.env.config.EnvConfig` does in RL."""
    key_change_prob: float = 0.0
    """Share of windows whose past (before a cut in the last two bars) is moved to another key: the prior
    learns to follow a performer who has just changed key (ReaLchords' adaptation test)."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    log_every: int = 100
    """Log the training loss every N steps."""
    eval_every: int = 500
    """Validate, log and checkpoint every N steps."""
    max_minutes: float = 0.0
    """Stop early after this wall time (0 = no limit); the best checkpoint so far is kept."""


@torch.no_grad()
def evaluate(net: PolicyNet, ws: WindowSet, batch_size: int = 2048) -> dict[str, float]:
    """Validation loss (nats/step), accuracy, and accuracy on the steps where the real part has an onset."""
    net.eval()
    total_loss, correct, onset_correct, onsets = 0.0, 0, 0, 0
    n = len(ws)
    for s in range(0, n, batch_size):
        idx = np.arange(s, min(s + batch_size, n))
        perf, agent, pos, target = sample_batch(ws, idx, transpose=False, rng=np.random.default_rng(0))
        logits = net(perf, agent, pos)
        total_loss += float(nnf.cross_entropy(logits, target, reduction="sum"))
        pred = logits.argmax(dim=1)
        correct += int((pred == target).sum())
        on = target >= ONSET_BASE
        onset_correct += int((pred[on] == target[on]).sum())
        onsets += int(on.sum())
    net.train()
    return {"loss": total_loss / n, "acc": correct / n, "onset_acc": onset_correct / max(onsets, 1)}


def lr_at(step: int, cfg: MLEConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train the MLE prior of ``recipe`` into ``out_dir``; return the best checkpoint's path."""
    # 1. Config: one dataclass per table, unknown keys rejected.
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(recipe.get("seed", 1))
    set_threads(int(recipe.get("threads", 1)))
    seed_everything(seed)
    net_cfg = from_table(NetConfig, recipe.get("net"), "net")
    data_cfg = from_table(DataConfig, recipe.get("data"), "data")
    cfg = from_table(MLEConfig, recipe.get("mle"), "mle")
    grid = Grid(net_cfg.steps_per_beat, net_cfg.beats_per_bar)
    write_toml(recipe, out / "recipe.toml")

    # 2. Data: every step of every piece, in the written key; keys are drawn per batch.
    t0 = time.monotonic()
    train_pieces = load_pieces(data_cfg, "train", grid)
    valid_pieces = load_pieces(data_cfg, "valid", grid)
    lo, hi = accompaniment_range(train_pieces)
    lo, hi = max(0, lo - data_cfg.pitch_margin), min(127, hi + data_cfg.pitch_margin)
    net_cfg = dataclasses.replace(net_cfg, pitch_min=lo, pitch_max=hi, part=data_cfg.accompaniment)
    max_shift = data_cfg.max_shift if data_cfg.transpose else 0
    train_ws = build_windows(
        train_pieces,
        window=net_cfg.window,
        mode=net_cfg.mode,
        pitch_min=lo,
        pitch_max=hi,
        max_shift=max_shift,
    )
    valid_ws = build_windows(
        valid_pieces, window=net_cfg.window, mode=net_cfg.mode, pitch_min=lo, pitch_max=hi
    )
    keys = float(np.mean(train_ws.shift_hi.astype(int) - train_ws.shift_lo.astype(int) + 1))
    log.info(
        "data: %d train pieces (%d windows, %.1f keys each on average), %d valid pieces (%d windows), "
        "%s range %d..%d, built in %.1fs",
        len(train_pieces), len(train_ws), keys, len(valid_pieces), len(valid_ws), data_cfg.accompaniment,
        lo, hi, time.monotonic() - t0,
    )  # fmt: skip

    # 3. Network and optimizer.
    net = PolicyNet(net_cfg)
    # The expected-consonance weight is fixed while imitating (Bach's bass would teach it little: he
    # chose knowing the melody); RL and the recipe set it.
    trained = [p for name, p in net.named_parameters() if name not in ("ec_weight", "parallel_weight")]
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    step, best_loss = 0, float("inf")
    last, best = out / "last.pt", out / "best.pt"
    if resume and last.exists():
        ck = load_checkpoint(last)
        net.load_state_dict(ck.model)
        if ck.optimizer is not None:
            opt.load_state_dict(ck.optimizer)
        if ck.rng is not None:
            restore_rng(ck.rng)
        rng.bit_generator.state = ck.extra["batch_rng"]
        step, best_loss = ck.step, float(ck.extra.get("best_loss", best_loss))
        log.info("resumed from %s at step %d", last, step)
    log.info("network: %d parameters, %s", param_count(net), net_cfg)

    # 4. The loop: sample a batch of windows in random keys, cross-entropy on the real token at t.
    metrics: dict[str, Any] = {}
    start = time.monotonic()
    net.train()
    with (
        RunLogger(out, append=resume and step > 0) as runlog,
        progress(cfg.steps, initial=step, desc="mle") as bar,
    ):
        while step < cfg.steps:
            idx = rng.integers(0, len(train_ws), size=cfg.batch_size)
            batch = sample_training_batch(
                train_ws, idx, transpose=max_shift > 0, rng=rng, agent_noise=cfg.agent_noise,
                late_onset_prob=cfg.late_onset_prob, key_change_prob=cfg.key_change_prob,
                key_change_steps=2 * grid.steps_per_bar,
            )  # fmt: skip
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            logits, _, aux = net.heads(batch.performer, batch.agent, batch.position)
            loss = nnf.cross_entropy(logits, batch.target, label_smoothing=cfg.label_smoothing)
            if aux is not None and cfg.aux_weight > 0:
                loss = loss + cfg.aux_weight * nnf.cross_entropy(aux, batch.perf_next)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
                runlog.log(step, "train", loss=loss.item(), lr=lr_at(step, cfg))
            out_of_time = cfg.max_minutes > 0 and time.monotonic() - start > 60 * cfg.max_minutes
            if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
                # 5. Validate, log, checkpoint (last for resume, best for export).
                v = evaluate(net, valid_ws)
                runlog.log(step, "valid", loss=v["loss"], acc=v["acc"], onset_acc=v["onset_acc"])
                metrics = {f"valid_{k}": round(x, 5) for k, x in v.items()} | {"step": step}
                if v["loss"] < best_loss:
                    best_loss = v["loss"]
                    save_checkpoint(best, net=net, algo=ALGO, step=step, recipe=recipe, metrics=metrics)
                extra = {"batch_rng": rng.bit_generator.state, "best_loss": best_loss}
                save_checkpoint(
                    last,
                    net=net,
                    algo=ALGO,
                    step=step,
                    optimizer=opt,
                    recipe=recipe,
                    metrics=metrics,
                    extra=extra,
                )
                if out_of_time:
                    log.warning("mle: time budget of %.1f min reached at step %d", cfg.max_minutes, step)
                    break
    plot_curves(out / "metrics.jsonl", out / PLOT_FILE, title=f"mle: {recipe.get('name', out.name)}")
    log.info(
        "mle done: best valid loss %.4f (%s), %.1f min", best_loss, best, (time.monotonic() - start) / 60
    )
    return best if best.exists() else last
