"""The band network: one :class:`~liveagent.train.networks.PolicyNet` that plays every voice of a band.

``(performer, agent, position, others [B, V, W], voice [B]) -> logits [B, 130]``. On top of the solo
network (the performer's and the voice's own windows, the musical features, the heard soprano's
expected-consonance and parallels terms) it sees:

- a learned embedding of the voice being decided, added to the trunk's first layer;
- the last ``others_recent`` steps of every band voice, embedded slot by slot, and each voice's sounding
  pitch (pitch class, present, register) at the end of its row: the step being decided for the voices
  already decided in this step, the step before for the others;

and adds *vertical terms* to the logits, each with its own weight (set by the recipe, kept fixed while
imitating, learnable in RL), computed from what is known at the decision:

- ``band_consonance``: +1/-1 for each candidate pitch class's consonance with every voice already decided
  at this step (a fourth is dissonant against the bass, consonant between upper voices);
- ``band_parallels``: -1 for an onset that makes a parallel fifth or octave with a decided voice that moved
  (the same perfect interval class again, on another pitch class than the voice's own last one);
- ``band_crossing``: -1 for an onset above a higher voice's sounding pitch (the performer's included) or
  below a lower one's: what sounds now, decided or still held from the step before;
- ``band_spacing``: -1 for an onset more than an octave below the voice just above (a twelfth for the
  bass under the tenor).
"""

from __future__ import annotations

import json

import torch
from torch import nn
from torch.nn import functional as nnf

from liveagent.music.band import BandSpec
from liveagent.music.features import hears_current_step
from liveagent.music.theory import CONSONANT_TWO_VOICE, CONSONANT_UPPER_VOICES
from liveagent.music.tokens import ONSET_BASE, VOCAB_SIZE
from liveagent.train.musical_features import MusicalFeatures
from liveagent.train.networks import NetConfig, PolicyNet

BAND_TERMS = ("band_consonance", "band_parallels", "band_crossing", "band_spacing")
"""The vertical terms, in the order of ``NetConfig.extra["band_terms"]`` (their initial weights)."""

SPACING = 12
"""Largest distance between adjacent upper voices (semitones); the bass may be :data:`BASS_SPACING` below."""
BASS_SPACING = 19


def _pair_signs(spec: BandSpec) -> torch.Tensor:
    """``[V, V+1, 12, 12]``: sign (+1 consonant, -1 dissonant) of candidate pitch class ``a`` of voice
    ``v`` against pitch class ``p`` of line ``j`` (band voices, then the performer as the last line),
    oriented by which of the two is above and judged with the bass rule when either is the bass."""
    n = spec.size
    out = torch.zeros(n, n + 1, 12, 12)
    bass = spec.size - 1  # the lowest voice
    for v in range(n):
        for j in range(n + 1):
            if j == v:
                continue
            above = j == n or j < v  # the performer is above every band voice
            table = CONSONANT_TWO_VOICE if (v == bass or j == bass) else CONSONANT_UPPER_VOICES
            for p in range(12):
                for a in range(12):
                    ic = (p - a) % 12 if above else (a - p) % 12
                    out[v, j, p, a] = 1.0 if bool(table[ic]) else -1.0
    return out


class BandNet(PolicyNet):
    """A :class:`PolicyNet` for every voice of ``spec`` (see the module docstring)."""

    decided: torch.Tensor
    above: torch.Tensor
    adjacent: torch.Tensor
    spacing: torch.Tensor
    sign_rows: torch.Tensor
    token_pitch: torch.Tensor
    onset_col: torch.Tensor
    pitch_pc: torch.Tensor
    token_pc_t: torch.Tensor
    classes: torch.Tensor
    eye: torch.Tensor

    def __init__(self, config: NetConfig) -> None:
        super().__init__(config)
        spec = band_spec_of(config)
        self.spec = spec
        n = spec.size
        extra = config.extra
        self.others_recent = int(extra.get("others_recent", 16))
        voice_dim = int(extra.get("voice_dim", 16))
        self.voice_embed = nn.Embedding(n, config.hidden)
        nn.init.normal_(self.voice_embed.weight, std=0.02)
        self.others_embed = nn.Embedding(VOCAB_SIZE, voice_dim)
        nn.init.normal_(self.others_embed.weight, std=0.1)
        others_in = n * (self.others_recent * voice_dim + 12 + 2 + 1)
        self.others_proj = nn.Linear(others_in, config.hidden)
        self.others_musical = MusicalFeatures(config.window, hears_current=False)
        weights = [float(w) for w in extra.get("band_terms", (1.0, 4.0, 2.0, 1.0))]
        if len(weights) != len(BAND_TERMS):
            raise ValueError(f"band_terms needs {len(BAND_TERMS)} weights {BAND_TERMS}, got {weights}")
        self.band_weights = nn.Parameter(torch.tensor(weights))
        decided = torch.from_numpy(spec.decided_before()).float()
        self.register_buffer("decided", decided, persistent=False)
        above = torch.tensor([[1.0 if j < v else 0.0 for j in range(n)] for v in range(n)])
        self.register_buffer("above", above, persistent=False)
        adjacent = torch.zeros(n, n + 1)  # the line just above each voice (the performer above the top one)
        spacing = torch.zeros(n)
        for v in range(n):
            adjacent[v, v - 1 if v > 0 else n] = 1.0
            spacing[v] = BASS_SPACING if v == n - 1 else SPACING
        self.register_buffer("adjacent", adjacent, persistent=False)
        self.register_buffer("spacing", spacing, persistent=False)
        signs = _pair_signs(spec)[:, :n].reshape(n * n * 12, 12)
        self.register_buffer("sign_rows", torch.cat([signs, torch.zeros(1, 12)]), persistent=False)
        pitch = torch.full((VOCAB_SIZE,), -1.0)
        pitch[ONSET_BASE:] = torch.arange(128, dtype=torch.float32)
        self.register_buffer("token_pitch", pitch, persistent=False)
        self.register_buffer("onset_col", (pitch >= 0).float(), persistent=False)
        pc = torch.zeros(129, 12)
        pc[1:] = nnf.one_hot(torch.arange(128) % 12, 12).float()
        self.register_buffer("pitch_pc", pc, persistent=False)
        tpc = torch.zeros(VOCAB_SIZE, 12)
        tpc[ONSET_BASE:] = nnf.one_hot(torch.arange(128) % 12, 12).float()
        self.register_buffer("token_pc_t", tpc.T.contiguous(), persistent=False)
        self.register_buffer("classes", torch.arange(12, dtype=torch.int64).unsqueeze(0), persistent=False)
        self.register_buffer("eye", torch.eye(n, n + 1), persistent=False)

    def band_forward(
        self,
        performer: torch.Tensor,
        agent: torch.Tensor,
        position: torch.Tensor,
        others: torch.Tensor,
        voice: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(logits, trunk, aux logits)`` of one pass (the band's :meth:`PolicyNet.heads`)."""
        b, n = performer.shape[0], self.spec.size
        others = others.clamp(0, VOCAB_SIZE - 1)
        voice = voice.clamp(0, n - 1)
        flat = others.reshape(b * n, -1)
        now1 = self.others_musical.sounding1(flat).reshape(b, n)  # pitch + 1 at each row's end
        prev1 = self.others_musical.sounding1(flat, before_last=True).reshape(b, n)
        emb = self.others_embed(others[:, :, -self.others_recent :]).reshape(b, -1)
        decided = self.decided[voice]  # [B, V]
        pcs = nnf.embedding(now1, self.pitch_pc)  # [B, V, 12]
        present = (now1 > 0).float().unsqueeze(2)
        feats = torch.cat([pcs, present, now1.float().unsqueeze(2) / 128.0, decided.unsqueeze(2)], 2)
        context = self.others_proj(torch.cat([emb, feats.reshape(b, -1)], 1)) + self.voice_embed(voice)
        logits, h, aux, perf1, agent1 = self._solo_heads(performer, agent, position, context)
        return logits + self._vertical(voice, decided, now1, prev1, perf1, agent1), h, aux

    def _solo_heads(
        self, performer: torch.Tensor, agent: torch.Tensor, position: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """The solo network's heads with ``context`` added to its first layer (as a style latent is)."""
        b = performer.shape[0]
        performer = performer.clamp(0, VOCAB_SIZE - 1)
        agent = agent.clamp(0, VOCAB_SIZE - 1)
        k = self.config.embedded_steps
        parts = [
            self.performer_embed(performer[:, -k:]).reshape(b, -1),
            self.agent_embed(agent[:, -k:]).reshape(b, -1),
            self.position_embed(torch.remainder(position, self.config.steps_per_bar)),
        ]
        assert self.musical is not None, "a band network needs musical_features = true"
        feats, sounding = self.musical(performer, agent)
        parts.append(feats)
        h = self.trunk[1:](self.trunk[0](torch.cat(parts, 1)) + context)
        logits = self.policy_head(h)
        aux = self.aux_head(h) if self.aux_head is not None else None
        if self.ec is not None:
            if hears_current_step(self.config.mode):
                pc_probs = self.ec.pc_of(sounding.performer)  # follow timing: the soprano at t is heard
            else:  # anticipate timing: the soprano's step t as the aux head predicts it
                assert aux is not None, (
                    "an anticipating band's expected-consonance terms need aux_head = true"
                )
                probs = torch.softmax(aux.detach(), dim=1)
                pc_probs = self.ec.pc_probs_from_tokens(probs, sounding.performer)
            if self.ec_weight is not None:
                logits = logits + self.ec_weight * self.ec(pc_probs, sounding.agent)
            if self.parallel_weight is not None:
                logits = logits - self.parallel_weight * self.ec.parallels(pc_probs, sounding)
        return logits, h, aux, sounding.performer, sounding.agent

    def _vertical(
        self,
        voice: torch.Tensor,
        decided: torch.Tensor,
        now1: torch.Tensor,
        prev1: torch.Tensor,
        perf1: torch.Tensor,
        agent1: torch.Tensor,
    ) -> torch.Tensor:
        """The weighted vertical terms ``[B, 130]`` (onset tokens only; HOLD and REST score 0)."""
        w = self.band_weights
        lines1 = torch.cat([now1, perf1.unsqueeze(1)], 1)  # [B, V+1]: band voices, then the performer
        pcs = nnf.embedding(lines1, self.pitch_pc)  # [B, V+1, 12]
        # Consonance with the voices decided at this step (the performer is scored by the solo terms).
        # One table row per (voice, other voice, other's pitch class): a lookup, not an einsum over the
        # one-hot (onnxruntime's cost is per node and per element); a silent voice reads the zero row.
        n = self.spec.size
        pc = torch.remainder(now1 - 1, 12)
        row = (voice.unsqueeze(1) * n + self.classes[:, :n]) * 12 + pc
        row = torch.where(now1 > 0, row, self.sign_rows.shape[0] - 1)
        sign = nnf.embedding(row, self.sign_rows)  # [B, V, 12]
        cons = (sign * decided.unsqueeze(2)).sum(1) @ self.token_pc_t
        # Parallels with a decided voice that moved, from a perfect interval at t-1.
        prev_ic = torch.remainder(prev1 - agent1.unsqueeze(1), 12)  # [B, V]: the voice's pc over ours
        moved = (now1 > 0) & (prev1 > 0) & (now1 != prev1) & (agent1.unsqueeze(1) > 0)
        above = self.above[voice]  # a fifth is 7 over us from a higher voice, 5 from a lower one
        fifth = above * (prev_ic == 7).float() + (1.0 - above) * (prev_ic == 5).float()
        perfect = moved.float() * ((prev_ic == 0).float() + fifth) * decided
        idx = torch.remainder(self.classes.unsqueeze(0) + prev_ic.unsqueeze(2), 12)  # [B, V, 12]
        same = pcs[:, :-1].gather(2, idx)  # candidate pc q recreates the interval with the voice's new pc
        own = nnf.embedding(agent1, self.pitch_pc).unsqueeze(1)
        par = ((same * (1.0 - own)) * perfect.unsqueeze(2)).sum(1) @ self.token_pc_t
        # Crossing: an onset above a higher line or below a lower one (what sounds now at each).
        pitch = self.token_pitch.unsqueeze(0)  # [1, 130]
        sounding = lines1 > 0
        ref = (lines1 - 1).float().unsqueeze(2)  # [B, V+1, 1]
        higher = torch.cat([self.above[voice], torch.ones_like(perf1, dtype=torch.float32).unsqueeze(1)], 1)
        is_self = nnf.embedding(voice, self.eye)  # [B, V+1]
        lower = (1.0 - higher - is_self).clamp(min=0.0)
        cross_up = (pitch.unsqueeze(1) > ref).float() * (higher * sounding).unsqueeze(2)
        cross_down = (pitch.unsqueeze(1) < ref).float() * (lower * sounding).unsqueeze(2)
        cross = (cross_up + cross_down).sum(1).clamp(max=1.0) * self.onset_col
        # Spacing: more than an octave (a twelfth for the bass) below the line just above.
        adj = self.adjacent[voice]  # [B, V+1]
        above1 = (lines1.float() * adj).sum(1, keepdim=True)  # pitch + 1 of the line above (0 = silent)
        gap = (above1 - 1.0) - pitch
        space = ((gap > self.spacing[voice].unsqueeze(1)) & (above1 > 0)).float() * self.onset_col
        return w[0] * cons - w[1] * par - w[2] * cross - w[3] * space

    def forward(  # type: ignore[override]
        self,
        performer: torch.Tensor,
        agent: torch.Tensor,
        position: torch.Tensor,
        others: torch.Tensor,
        voice: torch.Tensor,
    ) -> torch.Tensor:
        """Logits ``[B, 130]``: the exported path."""
        return self.band_forward(performer, agent, position, others, voice)[0]


def band_spec_of(config: NetConfig) -> BandSpec:
    """The band a network config plays (``extra["band"]``: the metadata JSON of :class:`BandSpec`)."""
    raw = config.extra.get("band")
    if not raw:
        raise ValueError("a band network needs net.extra.band (a BandSpec JSON)")
    return BandSpec.from_json(raw if isinstance(raw, str) else json.dumps(raw))


def is_band(config: NetConfig) -> bool:
    return bool(config.extra.get("band"))
