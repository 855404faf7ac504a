"""A style-conditioned MLE policy: the online accompanist with a style latent ``z`` as input (CleanRL style).

The same supervised next-token training as :mod:`liveagent.train.mle` (the shared observation builder, the
real accompaniment as the agent's past, the same noise), plus one input: ``z`` = the style VAE's posterior
mean (:mod:`liveagent.train.style_vae`) of the CURRENT bar's real accompaniment over its melody bar, in the
batch's key. So ``z`` tells the policy how the bar it is playing should go (teacher forcing); at play time
it is the contract input ``style`` float32 [B, D] (contract 1.2), set from a mood or a pad.

The network is :class:`~liveagent.train.networks.PolicyNet` with ``style_dim = D``: ``z`` is projected and
added to the trunk's first layer. The projection starts at zero and the rest can be warm-started from a plain
policy of the same architecture (``[style] init``, e.g. the follow MLE prior), so training only has to teach
it to listen to ``z``.

Read :func:`train` top to bottom. Recipe tables: ``[net]`` (NetConfig; ``style_dim`` is set from the VAE),
``[data]`` (DataConfig), ``[mle]`` (MLEConfig of :mod:`liveagent.train.mle`), ``[style]`` (StyleConfig),
top-level ``seed`` and ``threads``. Outputs in ``out_dir``: ``metrics.jsonl``, ``curves.png``, ``last.pt``,
``best.pt`` (lowest validation loss); the checkpoint's ``extra["style"]`` holds the moods and axes that
`liveagent export` writes into the policy's metadata.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as nnf

from liveagent.music.bar_features import line_bars
from liveagent.music.piece import Piece
from liveagent.music.tokens import ONSET_BASE, Grid
from liveagent.train.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from liveagent.train.data import (
    DataConfig,
    TrainBatch,
    WindowSet,
    accompaniment_range,
    build_windows,
    load_pieces,
    sample_training_batch,
    transpose_windows,
)
from liveagent.train.logging_utils import PLOT_FILE, RunLogger, progress, set_threads
from liveagent.train.mle import MLEConfig, lr_at
from liveagent.train.networks import NetConfig, PolicyNet, param_count
from liveagent.train.plot import plot_curves
from liveagent.train.recipes import from_table, write_toml
from liveagent.train.style_vae import StyleVAE, load_vae, style_spec

log = logging.getLogger(__name__)

ALGO = "style"


@dataclass
class StyleConfig:
    """The ``[style]`` table of a recipe."""

    vae: str = "runs/style_vae/vae.pt"
    """The trained style VAE (``liveagent train vae``): its encoder gives ``z``, its moods go with the
    policy."""
    init: str = ""
    """A checkpoint of a plain policy with the same ``[net]`` to start from (e.g.
    ``runs/follow_mle/best.pt``); empty = train from scratch."""
    z_noise: float = 0.1
    """Std of Gaussian noise added to ``z`` while training: a mood is an average of many bars' ``z``, not
    one bar's, and the policy must play well near, not only at, the points it was shown."""
    neutral_prob: float = 0.1
    """Share of rows whose ``z`` is replaced by the neutral mood's: the default the runtime feeds must give
    a policy that still follows the melody as the plain one does."""


@dataclass
class StyleWindows:
    """The windows of :class:`~liveagent.train.data.WindowSet` plus, per row, the bar being played."""

    ws: WindowSet
    acc_bar: npt.NDArray[np.uint8]
    """[N, steps_per_bar] the real accompaniment's tokens of the bar holding the decided step."""
    mel_bar: npt.NDArray[np.uint8]
    """[N, steps_per_bar] the melody's tokens of that bar."""


def bar_rows(pieces: list[Piece], steps_per_bar: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Per step of every piece (the row order of :func:`build_windows`), both lines' tokens of its bar."""
    acc, mel = [], []
    for p in pieces:
        bar = np.arange(p.n_steps) // steps_per_bar
        acc.append(line_bars(p.accompaniment, steps_per_bar)[bar].astype(np.uint8))
        mel.append(line_bars(p.performer, steps_per_bar)[bar].astype(np.uint8))
    return np.concatenate(acc), np.concatenate(mel)


def style_batch(
    sw: StyleWindows,
    idx: npt.NDArray[np.int64],
    vae: StyleVAE,
    cfg: MLEConfig,
    *,
    transpose: bool,
    rng: np.random.Generator,
    steps_per_bar: int,
) -> tuple[TrainBatch, torch.Tensor]:
    """A training batch (the MLE noise) moved to random keys, and ``z`` [B, D] of each row's bar in that
    key."""
    batch = sample_training_batch(
        sw.ws, idx, transpose=False, rng=rng, agent_noise=cfg.agent_noise,
        late_onset_prob=cfg.late_onset_prob, key_change_prob=cfg.key_change_prob,
        key_change_steps=2 * steps_per_bar,
    )  # fmt: skip
    acc = torch.from_numpy(sw.acc_bar[idx].astype(np.int64))
    mel = torch.from_numpy(sw.mel_bar[idx].astype(np.int64))
    if transpose:
        lo, hi = sw.ws.shift_lo[idx].astype(np.int64), sw.ws.shift_hi[idx].astype(np.int64)
        shift = torch.from_numpy(lo + np.floor(rng.random(len(idx)) * (hi - lo + 1)).astype(np.int64))
        perf, agent, target, perf_next = (
            transpose_windows(t, shift) for t in (batch.performer, batch.agent, batch.target, batch.perf_next)
        )
        batch = TrainBatch(perf, agent, batch.position, target, perf_next)
        acc, mel = transpose_windows(acc, shift), transpose_windows(mel, shift)
    with torch.no_grad():
        z = vae.encode(acc, mel)[0]
    return batch, z


@torch.no_grad()
def evaluate(
    net: PolicyNet, sw: StyleWindows, vae: StyleVAE, neutral: torch.Tensor, batch_size: int = 2048
) -> dict[str, float]:
    """Validation loss and accuracy with the real bar's ``z`` and, for comparison, with the neutral ``z``
    (how much the style input tells the policy)."""
    net.eval()
    ws = sw.ws
    sums = {"loss": 0.0, "acc": 0.0, "onset_acc": 0.0, "loss_neutral": 0.0, "acc_neutral": 0.0}
    onsets = 0
    n = len(ws)
    for s in range(0, n, batch_size):
        idx = np.arange(s, min(s + batch_size, n))
        perf = torch.from_numpy(ws.performer[idx].astype(np.int64))
        agent = torch.from_numpy(ws.agent[idx].astype(np.int64))
        pos = torch.from_numpy(ws.position[idx])
        target = torch.from_numpy(ws.target[idx].astype(np.int64))
        z = vae.encode(torch.from_numpy(sw.acc_bar[idx].astype(np.int64)),
                       torch.from_numpy(sw.mel_bar[idx].astype(np.int64)))[0]  # fmt: skip
        logits = net(perf, agent, pos, z)
        plain = net(perf, agent, pos, neutral.expand(len(idx), -1))
        sums["loss"] += float(nnf.cross_entropy(logits, target, reduction="sum"))
        sums["loss_neutral"] += float(nnf.cross_entropy(plain, target, reduction="sum"))
        pred = logits.argmax(dim=1)
        sums["acc"] += float((pred == target).sum())
        sums["acc_neutral"] += float((plain.argmax(dim=1) == target).sum())
        on = target >= ONSET_BASE
        sums["onset_acc"] += float((pred[on] == target[on]).sum())
        onsets += int(on.sum())
    net.train()
    out = {k: v / n for k, v in sums.items()}
    out["onset_acc"] = sums["onset_acc"] / max(onsets, 1)
    return out


def warm_start(net: PolicyNet, path: str) -> None:
    """Load a plain policy's weights into ``net``: everything but the style projection and the graph's
    fixed term weights (``ec``: constants and a weight the recipe sets) must match."""
    ck = load_checkpoint(path)
    missing, unexpected = net.load_state_dict(ck.model, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("value_head.")]
    own = ("style_proj.", "ec.", "ec_weight", "parallel_weight")
    if unexpected or any(not k.startswith(own) for k in missing):
        raise ValueError(
            f"[style] init = {path}: architecture differs (missing {missing}, extra {unexpected})"
        )
    log.info("warm start from %s (step %d, %s)", path, ck.step, ck.metrics)


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train the style-conditioned policy of ``recipe`` into ``out_dir``; return the best checkpoint's path.

    ``resume`` is accepted for the CLI; a run is short and starts over."""
    # 1. Config.
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(recipe.get("seed", 1))
    set_threads(int(recipe.get("threads", 1)))
    seed_everything(seed)
    data_cfg = from_table(DataConfig, recipe.get("data"), "data")
    cfg = from_table(MLEConfig, recipe.get("mle"), "mle")
    style_cfg = from_table(StyleConfig, recipe.get("style"), "style")
    vae, vae_payload = load_vae(style_cfg.vae)
    spec = style_spec(vae_payload)
    net_cfg = dataclasses.replace(from_table(NetConfig, recipe.get("net"), "net"), style_dim=spec["dim"])
    grid = Grid(net_cfg.steps_per_beat, net_cfg.beats_per_bar)
    if vae.steps_per_bar != grid.steps_per_bar:
        raise ValueError(f"the VAE's bars have {vae.steps_per_bar} steps, the policy's {grid.steps_per_bar}")
    write_toml(recipe, out / "recipe.toml")
    if resume:
        log.info("style: --resume starts the run over")

    # 2. Data: the windows of the MLE prior, plus each row's bar (both lines) for its z.
    train_pieces = load_pieces(data_cfg, "train", grid)
    valid_pieces = load_pieces(data_cfg, "valid", grid)
    lo, hi = accompaniment_range(train_pieces)
    lo, hi = max(0, lo - data_cfg.pitch_margin), min(127, hi + data_cfg.pitch_margin)
    net_cfg = dataclasses.replace(net_cfg, pitch_min=lo, pitch_max=hi, part=data_cfg.accompaniment)
    max_shift = data_cfg.max_shift if data_cfg.transpose else 0
    kw = {"window": net_cfg.window, "mode": net_cfg.mode, "pitch_min": lo, "pitch_max": hi}
    train_sw = StyleWindows(build_windows(train_pieces, max_shift=max_shift, **kw),  # type: ignore[arg-type]
                            *bar_rows(train_pieces, grid.steps_per_bar))  # fmt: skip
    valid_sw = StyleWindows(build_windows(valid_pieces, **kw), *bar_rows(valid_pieces, grid.steps_per_bar))  # type: ignore[arg-type]
    neutral = torch.tensor(spec["moods"]["neutral"]["z"], dtype=torch.float32).view(1, -1)
    log.info("data: %d train windows, %d valid windows; style D = %d", len(train_sw.ws), len(valid_sw.ws),
             spec["dim"])  # fmt: skip

    # 3. Network (warm-started if asked) and optimizer.
    net = PolicyNet(net_cfg)
    if style_cfg.init:
        warm_start(net, style_cfg.init)
    trained = [p for name, p in net.named_parameters() if name not in ("ec_weight", "parallel_weight")]
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    step, best_loss = 0, float("inf")
    last, best = out / "last.pt", out / "best.pt"
    extra = {"style": spec, "vae": style_cfg.vae}
    log.info("network: %d parameters, %s", param_count(net), net_cfg)

    # 4. The loop: cross-entropy on the real token at t, given the real bar's z (noised, sometimes neutral).
    start = time.monotonic()
    metrics: dict[str, Any] = {}
    net.train()
    with RunLogger(out) as runlog, progress(cfg.steps, desc="style") as bar:
        while step < cfg.steps:
            idx = rng.integers(0, len(train_sw.ws), size=cfg.batch_size)
            batch, z = style_batch(train_sw, idx, vae, cfg, transpose=max_shift > 0, rng=rng,
                                   steps_per_bar=grid.steps_per_bar)  # fmt: skip
            z = z + style_cfg.z_noise * torch.randn_like(z)
            plain = torch.from_numpy(rng.random(len(idx)) < style_cfg.neutral_prob).view(-1, 1)
            z = torch.where(plain, neutral, z)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            logits, _, aux = net.heads(batch.performer, batch.agent, batch.position, z)
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
                # 5. Validate, log, checkpoint (last and best).
                v = evaluate(net, valid_sw, vae, neutral)
                runlog.log(step, "valid", **v)
                metrics = {f"valid_{k}": round(x, 5) for k, x in v.items()} | {"step": step}
                if v["loss"] < best_loss:
                    best_loss = v["loss"]
                    save_checkpoint(best, net=net, algo=ALGO, step=step, recipe=recipe, metrics=metrics,
                                    extra=extra)  # fmt: skip
                save_checkpoint(last, net=net, algo=ALGO, step=step, optimizer=opt, recipe=recipe,
                                metrics=metrics, extra=extra)  # fmt: skip
                if out_of_time:
                    log.warning("style: time budget of %.1f min reached at step %d", cfg.max_minutes, step)
                    break
    plot_curves(out / "metrics.jsonl", out / PLOT_FILE, title=f"style: {recipe.get('name', out.name)}")
    log.info(
        "style done: best valid loss %.4f (%s), %.1f min", best_loss, best, (time.monotonic() - start) / 60
    )
    return best if best.exists() else last
