"""PPO for the band: the MLE band fine-tuned with the solo objective plus vertical terms between the voices.

Reads top to bottom, CleanRL style: the config, the rollout storage allocated once, then rollouts of the
whole band over chorale phrases and clipped-objective updates.

- Environment (here, numpy): ``num_envs`` phrases of ``phrase_steps`` steps, each starting on a bar line
  inside a training chorale with its real four-part history in the window, in a random key that keeps every
  voice in its range. Every step the voices act in the band's order (bass, tenor, alto), each hearing the
  soprano's step t (15 % of its onsets hidden: a performer later than the follow window) and the voices
  decided before it, exactly as the engine plays them.
- Reward per voice and step (weights in ``[band_ppo]``): consonance with the melody wherever both sound,
  again where the melody starts a note (the solo objective's vertical and change terms; nothing is paid per
  onset of the voice, which would buy re-strikes); consonance with every
  other band voice; minus parallel fifths/octaves with any other line (the soprano included); minus
  crossing; minus spacing; a density term at each bar line (fewer than ``min_notes_per_bar`` or more than
  ``max_notes_per_bar`` onsets costs per note); plus ``beta * (log p_prior(a) - log pi(a))``, the leash of
  RL Tuner and ReaLchords inside the reward.
- Actor: the band network from the MLE checkpoint; critic: a value head on the detached trunk (its
  regression never moves the pretrained trunk). Each voice is its own trajectory for GAE.
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
from torch import nn

from liveagent.music.band import BandBuffers, BandSpec, build_band_observation
from liveagent.music.features import hide_current_onsets
from liveagent.music.piece import Piece
from liveagent.music.sampling import range_mask
from liveagent.music.theory import CONSONANT_TWO_VOICE, CONSONANT_UPPER_VOICES
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, Grid
from liveagent.train.band_mle import _shifts, band_pieces
from liveagent.train.band_net import BASS_SPACING, SPACING, BandNet, band_spec_of
from liveagent.train.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from liveagent.train.data import DataConfig, load_pieces
from liveagent.train.logging_utils import PLOT_FILE, RunLogger, progress, set_threads
from liveagent.train.plot import plot_curves
from liveagent.train.recipes import from_table, write_toml
from liveagent.train.rl_common import compute_gae, masked_log_softmax, sample_from_logp

log = logging.getLogger(__name__)

ALGO = "band_ppo"
TERMS = ("melody", "pairs", "parallels", "crossing", "spacing", "density", "prior")


@dataclass
class BandPPOConfig:
    """The ``[band_ppo]`` table of a recipe."""

    prior: str = "runs/band/best.pt"
    """The MLE band checkpoint: the actor's start and the leash's prior."""
    total_steps: int = 600_000
    """Band steps (each: every voice decides once) over all environments."""
    num_envs: int = 64
    """Phrases played at once."""
    phrase_steps: int = 64
    """Steps per phrase (4 bars of 16ths); one phrase per environment per rollout."""
    learning_rate: float = 1e-4
    """Adam learning rate."""
    gamma: float = 0.9
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    update_epochs: int = 2
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per pass."""
    clip_coef: float = 0.2
    """PPO ratio clip."""
    vf_coef: float = 0.5
    """Value loss weight."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    prior_reward_coef: float = 0.2
    """beta of ``beta * (log p_prior(a) - log pi(a))`` in the reward."""
    late_onset_prob: float = 0.15
    """Share of the soprano's onsets at the decided step not yet heard (timing noise, as in training)."""
    late_phrase_prob: float = 0.3
    """Share of phrases whose performer is later than the follow window on EVERY onset (each heard a step
    late, amended into its own step): the band must still enter, late, rather than fall silent."""
    melody: float = 1.0
    """Consonance with the melody per step both sound (+1/-1), and again where the melody starts a note."""
    pairs: float = 0.5
    """Consonance with each other band voice per step both sound (+1/-1)."""
    parallels: float = 4.0
    """Per parallel fifth or octave with any other line."""
    crossing: float = 1.0
    """Per step out of order with another sounding line."""
    spacing: float = 0.5
    """Per step too far under the line above (an octave; a twelfth for the bass)."""
    density: float = 0.5
    """Per onset missing below ``min_notes_per_bar`` or beyond ``max_notes_per_bar``, at each bar line."""
    min_notes_per_bar: int = 3
    """Fewest onsets per bar and voice before the density term costs."""
    max_notes_per_bar: int = 8
    """Most onsets per bar and voice before it costs."""
    max_minutes: float = 15.0
    """Stop after this wall time (0 = none); the last checkpoint is kept."""


class PhraseSampler:
    """Random phrases of the training chorales: bar-aligned, the window's real history, a random key."""

    def __init__(self, pieces: list[Piece], spec: BandSpec, window: int, steps: int, spbar: int) -> None:
        self.pieces = [p for p in pieces if p.n_steps >= steps + spbar]
        self.spec, self.window, self.steps, self.spbar = spec, window, steps, spbar

    def sample(self, rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(soprano [n, W+L], lines [n, V, W+L])``: history then the phrase (the agents overwrite it)."""
        w, L = self.window, self.steps
        perf = np.full((n, w + L), REST, dtype=np.int64)
        lines = np.full((n, self.spec.size, w + L), REST, dtype=np.int64)
        for i in range(n):
            p = self.pieces[int(rng.integers(len(self.pieces)))]
            start = int(rng.integers(0, (p.n_steps - L) // self.spbar + 1)) * self.spbar
            lo, hi = _shifts(p, self.spec, 6)
            shift = int(rng.integers(lo, hi + 1))
            a, b = start - w, start + L
            src = slice(max(a, 0), b)
            dst = slice(max(a, 0) - a, w + L)
            perf[i, dst] = _moved(p.performer[src], shift)
            for j, v in enumerate(self.spec.voices):
                lines[i, j, dst] = _moved(p.voices[v][src], shift)
        return perf, lines


def _moved(tokens: npt.NDArray[np.int64], shift: int) -> npt.NDArray[np.int64]:
    return np.where(tokens >= ONSET_BASE, tokens + shift, tokens)


def _sounding(tokens: npt.NDArray[np.int64], prev: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The pitch sounding after a step's tokens (-1 = silent), from the pitch before it."""
    return np.where(tokens >= ONSET_BASE, tokens - ONSET_BASE, np.where(tokens == HOLD, prev, -1))


def _consonant(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], bass: bool | npt.NDArray[np.bool_]) -> Any:
    ic = np.abs(a - b) % 12
    return np.where(bass, CONSONANT_TWO_VOICE[ic], CONSONANT_UPPER_VOICES[ic])


def step_rewards(
    cfg: BandPPOConfig,
    spec: BandSpec,
    now: npt.NDArray[np.int64],
    before: npt.NDArray[np.int64],
    onsets: npt.NDArray[np.bool_],
) -> dict[str, npt.NDArray[np.float32]]:
    """The vertical terms of one step, per environment and voice (``[N, V]`` each).

    ``now``/``before``: sounding pitch of every line at t and t-1 (``[N, V+1]``: the band voices top-down,
    then the soprano; -1 silent); ``onsets``: where a line starts a note at t (``[N, V+1]``).
    """
    n, v1 = now.shape
    nv = v1 - 1
    bass = nv - 1
    out = {
        k: np.zeros((n, nv), dtype=np.float32)
        for k in ("melody", "pairs", "parallels", "crossing", "spacing")
    }
    sop = now[:, nv]
    for v in range(nv):
        p = now[:, v]
        sounds = p >= 0
        both = sounds & (sop >= 0)
        sign = np.where(_consonant(p, sop, v == bass), 1.0, -1.0)
        # Again where the MELODY changes (an anticipating voice is judged there); never for the voice's
        # own onsets: a reward per note buys re-strikes.
        out["melody"][:, v] = cfg.melody * both * sign * (1.0 + onsets[:, nv])
        for j in range(v1):
            if j == v:
                continue
            q = now[:, j]
            pair = sounds & (q >= 0)
            if j < nv:
                lower_bass = (v == bass) | (j == bass)
                out["pairs"][:, v] += cfg.pairs * pair * np.where(_consonant(p, q, lower_bass), 1.0, -1.0)
            # Parallels: both moved the same way from a perfect interval to the same perfect interval.
            pb, qb = before[:, v], before[:, j]
            was = (pb >= 0) & (qb >= 0)
            ic_now, ic_before = np.abs(p - q) % 12, np.abs(pb - qb) % 12
            perfect = ((ic_now == 0) | (ic_now == 7)) & (ic_now == ic_before)
            same_way = np.sign(p - pb) == np.sign(q - qb)
            moved = (p != pb) & (q != qb)
            out["parallels"][:, v] -= cfg.parallels * (pair & was & perfect & same_way & moved)
            above = j == nv or j < v  # the soprano and the voices listed before are higher
            crossed = (q < p) if above else (q > p)
            out["crossing"][:, v] -= cfg.crossing * (pair & crossed)
        above_line = nv if v == 0 else v - 1
        a = now[:, above_line]
        limit = BASS_SPACING if v == bass else SPACING
        out["spacing"][:, v] -= cfg.spacing * ((a >= 0) & sounds & (a - p > limit))
    return out


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Fine-tune the band of ``[band_ppo] prior``; returns the last checkpoint's path."""
    # 1. Config, prior, data.
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(recipe.get("seed", 1))
    set_threads(int(recipe.get("threads", 1)))
    seed_everything(seed)
    cfg = from_table(BandPPOConfig, recipe.get("band_ppo"), "band_ppo")
    data_cfg = from_table(DataConfig, recipe.get("data"), "data")
    write_toml(recipe, out / "recipe.toml")
    ck = load_checkpoint(cfg.prior)
    if ck.net_config.mode != "follow":
        # Its rollouts build follow-timing observations (the soprano's step t heard): an anticipating
        # prior would be fine-tuned on what it never sees live.
        raise ValueError(
            f"[band_ppo] prior {cfg.prior}: band PPO fine-tunes a follow band, not {ck.net_config.mode}"
        )
    prior = ck.build_net(eval_mode=True)
    actor_cfg = dataclasses.replace(ck.net_config, value_head=True)
    actor = BandNet(actor_cfg)
    actor.load_state_dict(ck.model, strict=False)
    assert isinstance(prior, BandNet) and actor.value_head is not None
    nn.init.zeros_(actor.value_head.weight)
    nn.init.zeros_(actor.value_head.bias)
    fixed = ("ec_weight", "parallel_weight", "band_weights")
    params = [p for name, p in actor.named_parameters() if name not in fixed]
    opt = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5)
    actor.eval()  # no dropout: the rollout's and the update's log-probabilities must be the same function
    spec = band_spec_of(actor_cfg)
    grid = Grid(actor_cfg.steps_per_beat, actor_cfg.beats_per_bar)
    spbar, w, L, n, nv = grid.steps_per_bar, actor_cfg.window, cfg.phrase_steps, cfg.num_envs, spec.size
    sampler = PhraseSampler(band_pieces(load_pieces(data_cfg, "train", grid), spec), spec, w, L, spbar)
    masks = torch.from_numpy(np.stack([range_mask(lo, hi) for lo, hi in spec.ranges]))  # [V, 130]
    rng = np.random.default_rng(seed)
    if resume:
        log.warning("band_ppo does not resume: starting over")

    # 2. Storage, allocated once: [L, N, V] samples per rollout.
    shape = (L, n, nv)
    s_perf = torch.zeros((*shape, w), dtype=torch.int64)
    s_agent = torch.zeros((*shape, w), dtype=torch.int64)
    s_others = torch.zeros((*shape, nv, w), dtype=torch.int64)
    s_pos = torch.zeros(shape, dtype=torch.int64)
    s_voice = torch.zeros(shape, dtype=torch.int64)
    s_act = torch.zeros(shape, dtype=torch.int64)
    s_logp = torch.zeros(shape)
    values = np.zeros(shape, dtype=np.float32)
    rewards = np.zeros(shape, dtype=np.float32)
    obs = BandBuffers.allocate_band(n, w, nv)
    steps = np.zeros(n, dtype=np.int64)
    iterations = max(1, cfg.total_steps // (n * L))
    start = time.monotonic()
    last = out / "last.pt"
    with RunLogger(out) as runlog, progress(iterations, desc="band_ppo") as bar:
        for it in range(iterations):
            # 3. Rollout: every step, the voices in order; then the step's rewards.
            perf, lines = sampler.sample(rng, n)
            late_env = rng.random(n) < cfg.late_phrase_prob
            sums = dict.fromkeys(TERMS, 0.0)
            before = np.full((n, nv + 1), -1, dtype=np.int64)
            for j in range(nv):
                before[:, j] = _last_pitch(lines[:, j, :w])
            before[:, nv] = _last_pitch(perf[:, :w])
            bar_onsets = np.zeros((n, nv), dtype=np.int64)
            for t in range(L):
                steps.fill(w + t)
                hide = late_env | (rng.random(n) < cfg.late_onset_prob)
                prior_logp = np.zeros((n, nv), dtype=np.float32)
                for v in spec.order_index:
                    build_band_observation(perf, lines, v, steps, spec=spec, window=w, steps_per_bar=spbar,
                                           mode="follow", out=obs)  # fmt: skip
                    hide_current_onsets(obs.performer, hide)
                    x = tuple(
                        torch.from_numpy(a)
                        for a in (obs.performer, obs.agent, obs.position, obs.others, obs.voice)
                    )
                    with torch.no_grad():
                        logits, h, _ = actor.band_forward(*x)
                        logp = masked_log_softmax(logits, masks[v])
                        act = sample_from_logp(logp)
                        value = actor.value_head(h).squeeze(-1)
                        q = masked_log_softmax(prior.band_forward(*x)[0], masks[v])
                    # resolve_hold: a HOLD while silent is a REST on the line (the sampled token is kept
                    # for the ratio: it is what the policy chose)
                    a = np.where((act.numpy() == HOLD) & (before[:, v] < 0), REST, act.numpy())
                    s_perf[t, :, v], s_agent[t, :, v], s_others[t, :, v] = x[0], x[1], x[3]
                    s_pos[t, :, v], s_voice[t, :, v], s_act[t, :, v] = x[2], x[4], act
                    s_logp[t, :, v] = logp.gather(1, act[:, None]).squeeze(1)
                    values[t, :, v] = value.numpy()
                    prior_logp[:, v] = q.gather(1, act[:, None]).squeeze(1).numpy()
                    lines[:, v, w + t] = a
                toks = np.concatenate([lines[:, :, w + t], perf[:, w + t : w + t + 1]], 1)
                now = _sounding(toks, before)
                terms = step_rewards(cfg, spec, now, before, toks >= ONSET_BASE)
                prior_term = cfg.prior_reward_coef * (prior_logp - s_logp[t].numpy())
                bar_onsets += toks[:, :nv] >= ONSET_BASE
                density = np.zeros((n, nv), dtype=np.float32)
                if (w + t + 1) % spbar == 0:
                    few = np.maximum(0, cfg.min_notes_per_bar - bar_onsets)
                    many = np.maximum(0, bar_onsets - cfg.max_notes_per_bar)
                    density = -cfg.density * (few + many).astype(np.float32)
                    bar_onsets[:] = 0
                rewards[t] = sum(terms.values()) + density + prior_term
                for k, val in (*terms.items(), ("density", density), ("prior", prior_term)):
                    sums[k] += float(np.mean(val))
                before = now

            # 4. Advantages: each (environment, voice) is one trajectory; the phrase ends the episode.
            dones = np.zeros((L, n * nv), dtype=np.float32)
            dones[-1] = 1.0
            adv, ret = compute_gae(rewards.reshape(L, -1), values.reshape(L, -1), dones,
                                   np.zeros(n * nv, dtype=np.float32), cfg.gamma, cfg.gae_lambda)  # fmt: skip
            b_adv, b_ret = torch.from_numpy(adv.reshape(-1)), torch.from_numpy(ret.reshape(-1))
            flat = {k: s.reshape(-1, *s.shape[3:]) for k, s in
                    (("perf", s_perf), ("agent", s_agent), ("others", s_others), ("pos", s_pos),
                     ("voice", s_voice), ("act", s_act), ("logp", s_logp))}  # fmt: skip

            # 5. Clipped-objective updates.
            total = b_adv.shape[0]
            mb = total // cfg.num_minibatches
            clip_fracs, approx_kl = [], 0.0
            for _ in range(cfg.update_epochs):
                perm = torch.from_numpy(rng.permutation(total))
                for s in range(0, total - mb + 1, mb):
                    i = perm[s : s + mb]
                    logits, h, _ = actor.band_forward(flat["perf"][i], flat["agent"][i], flat["pos"][i],
                                                      flat["others"][i], flat["voice"][i])  # fmt: skip
                    logp_all = masked_log_softmax(logits, masks[flat["voice"][i]])
                    new_logp = logp_all.gather(1, flat["act"][i][:, None]).squeeze(1)
                    ratio = (new_logp - flat["logp"][i]).exp()
                    mb_adv = b_adv[i]
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                    clipped = ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
                    pg = torch.max(-mb_adv * ratio, -mb_adv * clipped).mean()
                    v_loss = 0.5 * ((actor.value_head(h.detach()).squeeze(-1) - b_ret[i]) ** 2).mean()
                    ent = -(logp_all.exp() * logp_all.clamp(min=-1e9)).sum(-1).mean()
                    loss = pg + cfg.vf_coef * v_loss - cfg.ent_coef * ent
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, 0.5)
                    opt.step()
                    with torch.no_grad():
                        approx_kl = float(((ratio - 1) - (new_logp - flat["logp"][i])).mean())
                        clip_fracs.append(float(((ratio - 1).abs() > cfg.clip_coef).float().mean()))
            reward = float(rewards.mean())
            terms_logged = {f"r_{k}": v / L for k, v in sums.items()}
            runlog.log((it + 1) * n * L, "train", reward=reward, approx_kl=approx_kl,
                       clip_frac=float(np.mean(clip_fracs)), **terms_logged)  # fmt: skip
            bar.update(1)
            bar.set_postfix(reward=f"{reward:.3f}")
            out_of_time = cfg.max_minutes > 0 and time.monotonic() - start > 60 * cfg.max_minutes
            if (it + 1) % 10 == 0 or it + 1 == iterations or out_of_time:
                metrics = {"reward_last": round(reward, 5), "prior": cfg.prior, "step": (it + 1) * n * L}
                save_checkpoint(
                    last, net=actor, algo=ALGO, step=(it + 1) * n * L, recipe=recipe, metrics=metrics
                )
            if out_of_time:
                log.warning(
                    "band_ppo: time budget of %.1f min reached at iteration %d", cfg.max_minutes, it + 1
                )
                break
    plot_curves(out / "metrics.jsonl", out / PLOT_FILE, title=f"band_ppo: {recipe.get('name', out.name)}")
    return last


def _last_pitch(tokens: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The pitch sounding at the end of each row of token windows ``[N, T]`` (-1 silent)."""
    out = np.full(tokens.shape[0], -1, dtype=np.int64)
    for t in range(tokens.shape[1]):
        out = _sounding(tokens[:, t], out)
    return out
