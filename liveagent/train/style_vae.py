"""A style space: a VAE over bars of the accompaniment, and the moods found in it (CleanRL style, one file).

Why: a performer asks for "calmer" or "busier" while playing; the policy needs one small continuous input
that says how the bar should be played. A variational autoencoder over one bar of the accompaniment
(``steps_per_bar`` tokens), conditioned on the melody's bar, gives a latent ``z`` (``latent_dim`` numbers)
that holds what the melody does not already say: how many notes, in which register, how they move. The
style-conditioned policy (:mod:`liveagent.train.style_mle`) is trained with ``z`` = the posterior mean of
the bar it is playing, so at play time ``z`` is a knob.

Moods are named points in ``z``: the mean of the posterior means of the corpus bars that share a measurable
feature (:mod:`liveagent.music.bar_features`): ``calm`` = the sparsest bars, ``busy`` = the densest, and so
on (:data:`MOODS`); ``neutral`` = the mean over all bars. The axes of the pad (the first two principal
axes of the posterior means) and the mood axes (calm -> busy, dark -> bright) are stored with the moods.

Read :func:`train` top to bottom: config, data, network, loop, validation, moods, figure, checkpoint.
Recipe tables: ``[data]`` (DataConfig), ``[vae]`` (VAEConfig), ``[moods]`` (MoodConfig), top-level ``seed``
and ``threads``. Outputs in ``out_dir``: ``vae.pt`` (weights + config + moods, loaded with
``weights_only=True``), ``moods.json``, ``latent.png`` (if matplotlib is installed), ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as nnf

from liveagent.music.bar_features import FEATURE_DOC, FEATURES, bar_feature_matrix, bar_features, line_bars
from liveagent.music.piece import Piece
from liveagent.music.tokens import ONSET_BASE, VOCAB_SIZE, Grid
from liveagent.train.checkpoint import seed_everything
from liveagent.train.data import DataConfig, accompaniment_range, load_pieces
from liveagent.train.logging_utils import RunLogger, progress, set_threads
from liveagent.train.recipes import from_table, write_toml

log = logging.getLogger(__name__)

ALGO = "vae"
FORMAT = "liveagent.style_vae/1"
VAE_FILE = "vae.pt"
MOODS_FILE = "moods.json"
LATENT_PLOT = "latent.png"


@dataclass
class VAEConfig:
    """The ``[vae]`` table of a recipe (architecture and training)."""

    latent_dim: int = 4
    """D: size of the style latent ``z`` (the policy's ``style`` input is float32 [B, D])."""
    embed_dim: int = 16
    """Size of each token embedding (accompaniment and melody tables are separate)."""
    hidden: int = 256
    """Width of the encoder's and the decoder's hidden layers."""
    condition_on_melody: bool = True
    """Give the melody's bar to the encoder and the decoder, so ``z`` need not carry what the melody already
    says (its harmony) and keeps the style: density, register, motion."""
    beta: float = 1.0
    """Weight of the KL term once annealed (1 = the ELBO)."""
    kl_warmup: int = 1000
    """Steps over which the KL weight grows linearly from 0 to ``beta`` (avoids posterior collapse)."""
    steps: int = 4000
    """Optimizer steps."""
    batch_size: int = 256
    """Bars per step."""
    lr: float = 2e-3
    """AdamW learning rate (cosine decay to 5% of it)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    transpose: bool = True
    """Move each bar (both lines) to a random key that keeps the accompaniment in the corpus's range, as the
    policy's batches are moved: ``z`` must encode the register of every key the policy will see."""
    eval_every: int = 500
    """Validate and log every N steps."""

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.hidden < 1 or self.embed_dim < 1:
            raise ValueError(f"[vae] bad sizes: {self}")
        if self.beta < 0:
            raise ValueError(f"[vae] beta must be >= 0, got {self.beta}")


@dataclass
class MoodConfig:
    """The ``[moods]`` table: how moods are gathered from the corpus's bars."""

    quantile: float = 0.2
    """A mood gathers the bars in the top (``high``) or bottom (``low``) ``quantile`` of its feature."""
    sweep: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    """Points along each axis the mood table measures (``z = origin + a * direction``)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.quantile < 0.5:
            raise ValueError(f"[moods] quantile must be in (0, 0.5), got {self.quantile}")
        self.sweep = tuple(float(a) for a in self.sweep)


MOODS: dict[str, tuple[tuple[str, str], ...]] = {
    "calm": (("density", "low"),),
    "busy": (("density", "high"),),
    "bright": (("register", "high"), ("mode", "major")),
    "dark": (("register", "low"), ("mode", "minor")),
    "leaping": (("leap", "high"),),
    "syncopated": (("syncopation", "high"),),
}
"""Each mood's defining conditions on :data:`liveagent.music.bar_features.FEATURES`: ``high``/``low`` = the
top/bottom quantile of the feature (over the bars where it is defined), ``major``/``minor`` = the mode.
``neutral`` (all bars) is added by :func:`find_moods`."""

AXES = {"density": ("calm", "busy"), "register": ("dark", "bright")}
"""Mood axes, from the first mood to the second through ``neutral``: ``z = neutral + a * (to - from) / 2``."""


# ---------------------------------------------------------------------------------------------------------
# Data: one row per bar, the accompaniment's tokens and the melody's


@dataclass
class BarSet:
    """Every bar of a set of pieces in the written keys: tokens, features, and the transpositions allowed."""

    acc: npt.NDArray[np.int64]
    """[N, steps_per_bar] the accompaniment's tokens."""
    mel: npt.NDArray[np.int64]
    """[N, steps_per_bar] the melody's (the performer's) tokens."""
    features: npt.NDArray[np.float64]
    """[N, len(FEATURES)] the accompaniment bar's features (NaN where undefined)."""
    shift_lo: npt.NDArray[np.int64]
    """[N] lowest transposition keeping the accompaniment bar in range."""
    shift_hi: npt.NDArray[np.int64]
    """[N] highest."""

    def __len__(self) -> int:
        return int(self.acc.shape[0])


def _shift_range(tokens: npt.NDArray[np.int64], lo: int, hi: int, max_shift: int) -> tuple[int, int]:
    pitches = tokens[tokens >= ONSET_BASE] - ONSET_BASE
    if pitches.size == 0:
        return -max_shift, max_shift
    return min(0, max(-max_shift, lo - int(pitches.min()))), max(0, min(max_shift, hi - int(pitches.max())))


def build_bars(pieces: list[Piece], pitch_min: int, pitch_max: int, max_shift: int) -> BarSet:
    """Every bar of ``pieces``; bars where the accompaniment never sounds are left out."""
    spb, beat = pieces[0].grid.steps_per_bar, pieces[0].grid.steps_per_beat
    acc, mel, feats, lo, hi = [], [], [], [], []
    for p in pieces:
        assert p.key is not None
        a, m = line_bars(p.accompaniment, spb), line_bars(p.performer, spb)
        f = bar_feature_matrix(bar_features(p.accompaniment, spb, beat, p.key.mode == "major"))
        keep = ~np.isnan(f[:, FEATURES.index("register")])
        for i in np.flatnonzero(keep):
            s_lo, s_hi = _shift_range(a[i], pitch_min, pitch_max, max_shift)
            mel_p = m[i][m[i] >= ONSET_BASE] - ONSET_BASE
            if mel_p.size:  # the melody must stay inside MIDI too
                s_lo, s_hi = max(s_lo, -int(mel_p.min())), min(s_hi, 127 - int(mel_p.max()))
            lo.append(s_lo)
            hi.append(s_hi)
        acc.append(a[keep])
        mel.append(m[keep])
        feats.append(f[keep])
    return BarSet(
        np.concatenate(acc), np.concatenate(mel), np.concatenate(feats),
        np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64),
    )  # fmt: skip


def transpose_tokens_t(tokens: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move every ONSET of ``tokens`` [N, S] by ``shift`` [N] semitones (REST and HOLD stay)."""
    moved = (tokens + shift.view(-1, 1)).clamp(ONSET_BASE, VOCAB_SIZE - 1)
    return torch.where(tokens >= ONSET_BASE, moved, tokens)


def sample_bars(
    bars: BarSet, idx: npt.NDArray[np.int64], rng: np.random.Generator, transpose: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(acc, mel)`` int64 [B, S] of rows ``idx``, each moved to a random allowed key if ``transpose``."""
    acc = torch.from_numpy(bars.acc[idx])
    mel = torch.from_numpy(bars.mel[idx])
    if transpose:
        lo, hi = bars.shift_lo[idx], bars.shift_hi[idx]
        shift = torch.from_numpy(lo + np.floor(rng.random(len(idx)) * (hi - lo + 1)).astype(np.int64))
        acc, mel = transpose_tokens_t(acc, shift), transpose_tokens_t(mel, shift)
    return acc, mel


# ---------------------------------------------------------------------------------------------------------
# The network


class StyleVAE(nn.Module):
    """q(z | accompaniment bar, melody bar) and p(accompaniment bar | z, melody bar), both small MLPs.

    The bar's tokens are embedded slot by slot and flattened (a bar's rhythm is *where* its onsets sit), as
    the policy network embeds its windows.
    """

    def __init__(self, config: VAEConfig, steps_per_bar: int) -> None:
        super().__init__()
        self.config = config
        self.steps_per_bar = steps_per_bar
        c, s = config, steps_per_bar
        self.acc_embed = nn.Embedding(VOCAB_SIZE, c.embed_dim)
        self.mel_embed = nn.Embedding(VOCAB_SIZE, c.embed_dim) if c.condition_on_melody else None
        mel_dim = s * c.embed_dim if c.condition_on_melody else 0
        self.encoder = nn.Sequential(
            nn.Linear(s * c.embed_dim + mel_dim, c.hidden),
            nn.GELU(),
            nn.Linear(c.hidden, c.hidden),
            nn.GELU(),
        )
        self.to_mu = nn.Linear(c.hidden, c.latent_dim)
        self.to_logvar = nn.Linear(c.hidden, c.latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(c.latent_dim + mel_dim, c.hidden), nn.GELU(), nn.Linear(c.hidden, c.hidden), nn.GELU(),
            nn.Linear(c.hidden, s * VOCAB_SIZE),
        )  # fmt: skip

    def _melody(self, mel: torch.Tensor) -> torch.Tensor | None:
        if self.mel_embed is None:
            return None
        return self.mel_embed(mel.clamp(0, VOCAB_SIZE - 1)).flatten(1)

    def encode(self, acc: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` [B, D] of the posterior of bars ``acc`` [B, S] over melody bars ``mel`` [B, S]."""
        parts = [self.acc_embed(acc.clamp(0, VOCAB_SIZE - 1)).flatten(1)]
        m = self._melody(mel)
        if m is not None:
            parts.append(m)
        h = self.encoder(torch.cat(parts, dim=1))
        return self.to_mu(h), self.to_logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Token logits [B, S, 130] of the accompaniment bar."""
        m = self._melody(mel)
        x = z if m is None else torch.cat([z, m], dim=1)
        return self.decoder(x).view(z.shape[0], self.steps_per_bar, VOCAB_SIZE)

    def forward(
        self, acc: torch.Tensor, mel: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits [B, S, 130], mu, logvar)`` with a reparameterized sample of z."""
        mu, logvar = self.encode(acc, mel)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z, mel), mu, logvar


def kl_per_bar(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) of each row, in nats [B]."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


@torch.no_grad()
def posterior_means(vae: StyleVAE, acc: npt.ArrayLike, mel: npt.ArrayLike, batch: int = 4096) -> np.ndarray:
    """``mu`` [N, D] (float32) of every bar, in the bars' own keys."""
    vae.eval()
    a, m = (
        torch.as_tensor(np.asarray(acc), dtype=torch.int64),
        torch.as_tensor(np.asarray(mel), dtype=torch.int64),
    )
    out = [vae.encode(a[i : i + batch], m[i : i + batch])[0] for i in range(0, a.shape[0], batch)]
    return torch.cat(out).numpy().astype(np.float32)


@torch.no_grad()
def evaluate(vae: StyleVAE, bars: BarSet, batch: int = 4096) -> dict[str, float]:
    """Reconstruction from the posterior mean (NLL nats/token, token accuracy, accuracy on onsets), KL
    (nats/bar) and the latent units in use (posterior-mean variance > 0.01) on ``bars`` in their keys."""
    vae.eval()
    nll, correct, on_ok, ons, kl = 0.0, 0, 0, 0, 0.0
    mus = []
    for i in range(0, len(bars), batch):
        acc = torch.from_numpy(bars.acc[i : i + batch])
        mel = torch.from_numpy(bars.mel[i : i + batch])
        logits, mu, logvar = vae(acc, mel)
        nll += float(nnf.cross_entropy(logits.reshape(-1, VOCAB_SIZE), acc.reshape(-1), reduction="sum"))
        pred = logits.argmax(dim=-1)
        correct += int((pred == acc).sum())
        on = acc >= ONSET_BASE
        on_ok += int((pred[on] == acc[on]).sum())
        ons += int(on.sum())
        kl += float(kl_per_bar(mu, logvar).sum())
        mus.append(mu)
    vae.train()
    tokens = bars.acc.size
    active = int((torch.cat(mus).var(dim=0) > 0.01).sum())
    return {"nll": nll / tokens, "acc": correct / tokens, "onset_acc": on_ok / max(ons, 1),
            "kl": kl / len(bars), "active_units": float(active)}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Moods and axes


def _select(values: np.ndarray, side: str, q: float) -> tuple[np.ndarray, float]:
    """Rows in the top/bottom ``q`` of ``values`` (NaN never), and the threshold. When the quantile falls
    on the extreme value itself (a feature zero in most bars), only rows strictly past it count."""
    ok = ~np.isnan(values)
    if side == "high":
        thr = float(np.quantile(values[ok], 1.0 - q))
        sel = ok & (values >= thr) if thr > np.nanmin(values) else ok & (values > thr)
    else:
        thr = float(np.quantile(values[ok], q))
        sel = ok & (values <= thr) if thr < np.nanmax(values) else ok & (values < thr)
    return sel, thr


def find_moods(mu: np.ndarray, features: np.ndarray, cfg: MoodConfig) -> dict[str, dict[str, Any]]:
    """Each mood of :data:`MOODS` (plus ``neutral``): ``z`` (mean posterior mean of its bars), the
    conditions that gathered them (with thresholds), how many bars, and the mean of every feature there."""

    def summary(sel: np.ndarray) -> dict[str, Any]:
        return {
            "z": [round(float(x), 5) for x in mu[sel].mean(axis=0)],
            "bars": int(sel.sum()),
            "features": {n: round(float(np.nanmean(features[sel, i])), 4) for i, n in enumerate(FEATURES)},
        }

    moods: dict[str, dict[str, Any]] = {
        "neutral": {"defined_by": [{"feature": "all bars"}], **summary(np.ones(len(mu), dtype=bool))}
    }
    for name, conditions in MOODS.items():
        sel = np.ones(len(mu), dtype=bool)
        defined_by: list[dict[str, Any]] = []
        for feature, side in conditions:
            col = features[:, FEATURES.index(feature)]
            if side in ("major", "minor"):
                sel &= col == (1.0 if side == "major" else 0.0)
                defined_by.append({"feature": feature, "is": side})
            else:
                part, thr = _select(col, side, cfg.quantile)
                sel &= part
                defined_by.append({"feature": feature, "side": side, "quantile": cfg.quantile,
                                   "threshold": round(thr, 4)})  # fmt: skip
        if not sel.any() and len(conditions) > 1:
            # A corpus in one mode only (a user's folder all in major): the mode condition is dropped.
            sel, _ = _select(features[:, FEATURES.index(conditions[0][0])], conditions[0][1], cfg.quantile)
            defined_by = [*defined_by[:1], {"dropped": "no bar meets every condition"}]
            log.warning("mood %s: no bar meets every condition, gathered by %s only", name, conditions[0][0])
        if not sel.any():
            # The feature does not vary in this corpus (a toy bass on every beat): the mood is neutral.
            log.warning("mood %s: no bar of the corpus meets %s; it falls back to neutral", name, defined_by)
            sel = np.ones(len(mu), dtype=bool)
            defined_by = [*defined_by, {"dropped": "the feature does not vary: neutral"}]
        moods[name] = {"defined_by": defined_by, **summary(sel)}
    return moods


def find_axes(mu: np.ndarray, features: np.ndarray, moods: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The documented axes: ``pc1``, ``pc2`` (the main plane of the posterior means: the 2-D pad; origin the
    mean, direction two standard deviations along the axis) and the mood axes of :data:`AXES`. Each says
    which feature it moves (``feature``, ``sign``: the feature's correlation with the axis on the corpus)."""
    mean = mu.mean(axis=0)
    centered = mu - mean
    _, sing, vt = np.linalg.svd(centered, full_matrices=False)
    std = sing / math.sqrt(max(len(mu) - 1, 1))
    axes: list[dict[str, Any]] = []
    for k in range(min(2, vt.shape[0])):
        unit = vt[k]
        coord = centered @ unit
        corr = {}
        for i, name in enumerate(FEATURES):
            ok = ~np.isnan(features[:, i])
            with np.errstate(invalid="ignore", divide="ignore"):  # a constant feature has no correlation
                c = np.corrcoef(coord[ok], features[ok, i])[0, 1] if ok.sum() > 2 else float("nan")
            corr[name] = round(float(c), 3) if np.isfinite(c) else None
        best = max((n for n in corr if corr[n] is not None), key=lambda n: abs(corr[n] or 0.0))
        if (corr[best] or 0.0) < 0:  # orient the axis so that + raises its main feature
            unit, coord = -unit, -coord
            corr = {n: (None if c is None else -c) for n, c in corr.items()}
        axes.append({
            "name": f"pc{k + 1}", "origin": [round(float(x), 5) for x in mean],
            "direction": [round(float(x), 5) for x in 2.0 * std[k] * unit], "feature": best, "sign": 1,
            "explained_variance": round(float(sing[k] ** 2 / (sing**2).sum()), 4), "correlations": corr,
        })  # fmt: skip
    for feature, (lo, hi) in AXES.items():
        z_lo, z_hi = np.asarray(moods[lo]["z"]), np.asarray(moods[hi]["z"])
        axes.append({
            "name": feature, "origin": moods["neutral"]["z"],
            "direction": [round(float(x), 5) for x in (z_hi - z_lo) / 2.0], "feature": feature, "sign": 1,
            "from": lo, "to": hi,
        })  # fmt: skip
    return axes


def plot_latent(
    path: Path,
    mu: np.ndarray,
    features: np.ndarray,
    moods: dict[str, dict[str, Any]],
    axes: list[dict[str, Any]],
) -> bool:
    """The corpus's bars in the main plane of the posterior means (the ``pc1``/``pc2`` axes as stored, in
    units of the axis's ``direction``, i.e. of two standard deviations), coloured by notes per bar, moods
    marked. Returns False (and says why) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s (pip install matplotlib)", path.name)
        return False
    pcs = [a for a in axes if a["name"] in ("pc1", "pc2")]
    if len(pcs) < 2:
        log.warning("no 2-D plane to draw (latent_dim < 2): no %s", path.name)
        return False
    mean = np.asarray(pcs[0]["origin"])
    dirs = np.stack([np.asarray(a["direction"]) for a in pcs], axis=1)
    basis = dirs / (dirs**2).sum(axis=0)  # coordinate a along each axis: z = origin + a * direction
    xy = (mu - mean) @ basis
    fig, ax = plt.subplots(figsize=(7, 6))
    density = features[:, FEATURES.index("density")]
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=density, s=4, cmap="viridis", alpha=0.6, linewidths=0)
    fig.colorbar(sc, ax=ax, label="notes per bar (accompaniment)")
    for name, mood in moods.items():
        p = (np.asarray(mood["z"]) - mean) @ basis
        ax.scatter([p[0]], [p[1]], c="red", s=40, marker="x")
        ax.annotate(name, (p[0], p[1]), textcoords="offset points", xytext=(4, 4), fontsize=9, color="red")
    for setter, a in ((ax.set_xlabel, pcs[0]), (ax.set_ylabel, pcs[1])):
        r = a["correlations"].get(a["feature"])
        setter(f"{a['name']} (a, in 2 std): {a['feature']} rises with it, r = {r}")
    ax.set_title(f"{len(mu)} bars of the training split in the style latent (D = {mu.shape[1]})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------------------
# Saving and loading


def save_vae(path: str | os.PathLike[str], vae: StyleVAE, extra: dict[str, Any]) -> Path:
    """Weights + config + JSON-like data (moods, axes, metrics), atomically; loadable with weights_only."""
    path = Path(path)
    payload = {"format": FORMAT, "config": asdict(vae.config), "steps_per_bar": vae.steps_per_bar,
               "model": {k: v.detach().cpu() for k, v in vae.state_dict().items()}, **extra}  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_vae(path: str | os.PathLike[str]) -> tuple[StyleVAE, dict[str, Any]]:
    """``(vae in eval mode, the whole payload)``; no code runs (``weights_only=True``)."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a style VAE ({FORMAT})")
    vae = StyleVAE(VAEConfig(**data["config"]), int(data["steps_per_bar"]))
    vae.load_state_dict(data["model"])
    return vae.eval(), data


def style_spec(payload: dict[str, Any]) -> dict[str, Any]:
    """What a style-conditioned policy stores about its latent (metadata and model card): D, the moods
    with the features that define them, the axes, the feature definitions, the VAE's validation figures."""
    return {
        "dim": int(payload["config"]["latent_dim"]),
        "default": "neutral",
        "moods": payload["moods"],
        "axes": payload["axes"],
        "features": FEATURE_DOC,
        "vae": {"valid": payload.get("valid", {}), "config": payload["config"]},
    }


# ---------------------------------------------------------------------------------------------------------
# Training


def lr_at(step: int, cfg: VAEConfig) -> float:
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(step / max(cfg.steps, 1), 1.0))))


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train the style VAE of ``recipe`` into ``out_dir``, find the moods; return ``vae.pt``'s path.

    A run takes a minute or two, so ``resume`` is accepted (the CLI passes it) and a run starts over.
    """
    # 1. Config.
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(recipe.get("seed", 1))
    set_threads(int(recipe.get("threads", 1)))
    seed_everything(seed)
    data_cfg = from_table(DataConfig, recipe.get("data"), "data")
    cfg = from_table(VAEConfig, recipe.get("vae"), "vae")
    mood_cfg = from_table(MoodConfig, recipe.get("moods"), "moods")
    grid = Grid()
    write_toml(recipe, out / "recipe.toml")
    if resume:
        log.info("vae: a run is short, --resume starts it over")

    # 2. Data: every bar of the train and valid pieces, in the written keys.
    train_pieces = load_pieces(data_cfg, "train", grid)
    valid_pieces = load_pieces(data_cfg, "valid", grid)
    lo, hi = accompaniment_range(train_pieces)
    max_shift = data_cfg.max_shift if data_cfg.transpose else 0
    train_bars = build_bars(train_pieces, lo, hi, max_shift)
    valid_bars = build_bars(valid_pieces, lo, hi, 0)
    log.info("data: %d train bars, %d valid bars, %s range %d..%d", len(train_bars), len(valid_bars),
             data_cfg.accompaniment, lo, hi)  # fmt: skip

    # 3. Network and optimizer.
    vae = StyleVAE(cfg, grid.steps_per_bar)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)

    # 4. The loop: reconstruction (cross-entropy per token, summed over the bar) + annealed beta * KL.
    start = time.monotonic()
    valid: dict[str, float] = {}
    with RunLogger(out) as runlog, progress(cfg.steps, desc="vae") as bar:
        for step in range(1, cfg.steps + 1):
            idx = rng.integers(0, len(train_bars), size=cfg.batch_size)
            acc, mel = sample_bars(train_bars, idx, rng, cfg.transpose and max_shift > 0)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            logits, mu, logvar = vae(acc, mel)
            recon = nnf.cross_entropy(logits.reshape(-1, VOCAB_SIZE), acc.reshape(-1), reduction="sum")
            recon = recon / acc.shape[0]
            kl = kl_per_bar(mu, logvar).mean()
            beta = cfg.beta * min(1.0, step / max(cfg.kl_warmup, 1))
            loss = recon + beta * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step()
            bar.update(1)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                # 5. Validation: reconstruction from the posterior mean and KL on the valid split.
                valid = evaluate(vae, valid_bars)
                runlog.log(step, "train", loss=loss.item(), recon=recon.item(), kl=kl.item(), beta=beta)
                runlog.log(step, "valid", **valid)
                bar.set_postfix(nll=f"{valid['nll']:.3f}", kl=f"{valid['kl']:.2f}")

    # 6. Moods: posterior means of the training bars in their own keys, gathered by feature.
    mu = posterior_means(vae, train_bars.acc, train_bars.mel)
    moods = find_moods(mu, train_bars.features, mood_cfg)
    axes = find_axes(mu, train_bars.features, moods)
    for name, mood in moods.items():
        log.info("mood %-10s %5d bars, z=%s, features %s", name, mood["bars"], mood["z"], mood["features"])

    # 7. The figure and the files.
    plotted = plot_latent(out / LATENT_PLOT, mu, train_bars.features, moods, axes)
    payload = {"moods": moods, "axes": axes, "valid": valid, "sweep": list(mood_cfg.sweep),
               "data": {"corpus": data_cfg.corpus, "performer": data_cfg.performer,
                        "accompaniment": data_cfg.accompaniment, "pitch_min": lo, "pitch_max": hi},
               "recipe": recipe}  # fmt: skip
    path = save_vae(out / VAE_FILE, vae, payload)
    (out / MOODS_FILE).write_text(
        json.dumps(style_spec(load_vae(path)[1]), indent=2) + "\n", encoding="utf-8"
    )
    log.info(
        "vae done in %.1f min: valid NLL %.4f nats/token, token acc %.3f, onset acc %.3f, KL %.3f nats/bar, "
        "%d/%d units active%s", (time.monotonic() - start) / 60, valid["nll"], valid["acc"],
        valid["onset_acc"], valid["kl"], int(valid["active_units"]), cfg.latent_dim,
        f"; {LATENT_PLOT}" if plotted else "",
    )  # fmt: skip
    return path
