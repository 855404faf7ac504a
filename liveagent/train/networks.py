"""The policy network over the contract arrays: ``(performer, agent, position) -> logits [B, 130]``.

Why this shape: the live engine decides one step every ~40-170 ms and must answer in well under a
millisecond, on one thread, next to MIDI and OSC threads. A flattened embedding of both W-step windows
followed by a small MLP keeps every window slot distinct (rhythm lives in *where* a note sits in the
window, so a position-aware flat layer suits it better than pooling) and costs ~20 us in onnxruntime.
Tokens are embedded separately for the performer and the agent because the two lines play different
roles (the agent's own HOLDs carry its rhythm; the performer's carry harmony to answer).

One :class:`PolicyNet` serves every algorithm:

- MLE / actor-critic: ``forward`` gives logits; ``forward_with_value`` adds a scalar critic head
  (``NetConfig.value_head = True``) that shares the trunk.
- DQN: the 130 outputs of ``forward`` are read as Q values (the contract says a Q network exports its
  Q values as ``logits``).

Export traces ``forward`` only, so a value head never reaches the ONNX graph.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from liveagent.music.features import Mode, check_mode, hears_current_step
from liveagent.music.tokens import VOCAB_SIZE
from liveagent.train.musical_features import ExpectedConsonance, MusicalFeatures, Sounding, feature_dim
from liveagent.train.relative_predictor import RelativePredictor


@dataclass
class NetConfig:
    """Everything needed to rebuild a :class:`PolicyNet` (stored in every checkpoint).

    The first block is the policy's contract identity (it becomes the ONNX metadata); the second block is
    the architecture.
    """

    window: int = 32
    """W: steps of history per line the policy sees (contract input width)."""
    steps_per_beat: int = 4
    """Grid resolution the policy was trained on (4 = sixteenth notes)."""
    beats_per_bar: int = 4
    """Beats per bar of the grid; ``position`` runs over ``steps_per_beat * beats_per_bar`` values."""
    mode: Mode = "anticipate"
    """``anticipate`` (never sees the performer's note at t: the online accompanist) or ``react``."""
    part: str = "bass"
    """Which voice the policy plays (metadata for the runtime and the model card)."""
    pitch_min: int = 0
    """Lowest MIDI pitch the policy was trained to play (the runtime's default range mask)."""
    pitch_max: int = 127
    """Highest MIDI pitch the policy was trained to play."""

    embed_dim: int = 16
    """Size of each token embedding (performer and agent tables are separate)."""
    position_dim: int = 16
    """Size of the bar-position embedding."""
    hidden: int = 256
    """Width of the MLP trunk."""
    layers: int = 2
    """Number of hidden layers in the trunk (>= 1)."""
    dropout: float = 0.1
    """Dropout after each hidden layer while training (off in eval mode and in the export)."""
    value_head: bool = False
    """Add a scalar critic head on the shared trunk (actor-critic); never exported."""
    musical_features: bool = False
    """Add the features derived in the graph (:mod:`liveagent.train.musical_features`): sounding pitches,
    vertical and melodic intervals, pitch-class histograms and a key estimate over the whole window."""
    recent: int = 0
    """Embed only the last ``recent`` steps of each window slot by slot (0 = the whole window); the rest
    of a long window reaches the network through the musical features."""
    aux_head: bool = False
    """Add a head that predicts the performer's next unseen token (the step being decided in anticipate
    mode, the step after it otherwise): an auxiliary MLE loss, and the expected-consonance term's input."""
    relative_predictor: int = 0
    """Steps (the performer's last ones) seen by the key-free predictor of its next note that feeds the
    expected-consonance terms in anticipate mode (0 = none: the aux head feeds them).
    :mod:`liveagent.train.relative_predictor` says why: the aux head keeps the old key after a jump."""
    ec_weight: float = 0.0
    """Initial weight of the expected-consonance term added to the logits (0 = off). In anticipate mode
    the performer's pitch class comes from the aux head; in follow/react mode it is the one heard."""
    parallel_weight: float = 0.0
    """Initial weight of the expected-parallels term subtracted from the logits (0 = off): the chance an
    onset makes a parallel fifth or octave with the performer's note at the decided step."""
    style_dim: int = 0
    """D of the optional contract input ``style`` float32 [B, D] (contract 1.2; 0 = none): a style latent
    (:mod:`liveagent.train.style_vae`) projected and added to the trunk's first layer. The projection starts
    at zero, so a style policy warm-started from a plain one plays as it did until it learns to listen."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes an algorithm wants kept with the architecture (must be plain JSON-like data)."""

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.window < 1 or self.layers < 1 or self.hidden < 1 or self.embed_dim < 1:
            raise ValueError(f"bad network sizes: {self}")
        if not 0 <= self.pitch_min <= self.pitch_max <= 127:
            raise ValueError(f"bad pitch range {self.pitch_min}..{self.pitch_max}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.style_dim < 0:
            raise ValueError(f"style_dim must be >= 0, got {self.style_dim}")
        if not 0 <= self.recent <= self.window:
            raise ValueError(f"recent must be in 0..window ({self.window}), got {self.recent}")
        if self.relative_predictor and (hears_current_step(self.mode) or not self.aux_head):
            raise ValueError("a relative predictor needs anticipate mode and aux_head = true (its fallback)")
        if not 0 <= self.relative_predictor <= self.window:
            raise ValueError(
                f"relative_predictor must be in 0..window ({self.window}), got {self.relative_predictor}"
            )
        if self.uses_ec and self.mode == "anticipate" and not self.aux_head:
            raise ValueError("the expected-consonance terms in anticipate mode need aux_head = true")
        if self.uses_ec and not self.musical_features:
            raise ValueError("the expected-consonance terms need musical_features = true")

    @property
    def embedded_steps(self) -> int:
        """How many of the window's last steps are embedded slot by slot."""
        return self.recent or self.window

    @property
    def uses_ec(self) -> bool:
        """The graph has the expected-consonance and/or expected-parallels terms."""
        return self.ec_weight != 0.0 or self.parallel_weight != 0.0

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_beat * self.beats_per_bar

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error (a typo must not pass)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown NetConfig field(s): {sorted(unknown)}")
        return cls(**data)


class PolicyNet(nn.Module):
    """Embeddings of both windows and the bar position -> MLP trunk -> 130 logits (+ optional value).

    Inputs follow the contract: ``performer`` and ``agent`` int64 ``[B, W]``, ``position`` int64 ``[B]``.
    Out-of-vocabulary tokens are clamped and positions wrapped, so the exported graph never indexes out
    of range even if a caller breaks the contract.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.performer_embed = nn.Embedding(VOCAB_SIZE, c.embed_dim)
        self.agent_embed = nn.Embedding(VOCAB_SIZE, c.embed_dim)
        self.position_embed = nn.Embedding(c.steps_per_bar, c.position_dim)
        in_dim = 2 * c.embedded_steps * c.embed_dim + c.position_dim
        self.musical: MusicalFeatures | None = None
        if c.musical_features:
            self.musical = MusicalFeatures(c.window, hears_current_step(c.mode))
            in_dim += feature_dim()
        trunk: list[nn.Module] = []
        for i in range(c.layers):
            trunk += [nn.Linear(in_dim if i == 0 else c.hidden, c.hidden), nn.GELU(), nn.Dropout(c.dropout)]
        self.trunk = nn.Sequential(*trunk)
        self.style_proj: nn.Linear | None = nn.Linear(c.style_dim, c.hidden) if c.style_dim else None
        self.policy_head = nn.Linear(c.hidden, VOCAB_SIZE)
        self.value_head: nn.Linear | None = nn.Linear(c.hidden, 1) if c.value_head else None
        self.aux_head: nn.Linear | None = nn.Linear(c.hidden, VOCAB_SIZE) if c.aux_head else None
        self.relative: RelativePredictor | None = (
            RelativePredictor(c.relative_predictor, c.steps_per_bar) if c.relative_predictor else None
        )
        self.ec: ExpectedConsonance | None = ExpectedConsonance() if c.uses_ec else None
        self.ec_weight = nn.Parameter(torch.tensor(float(c.ec_weight))) if c.ec_weight != 0.0 else None
        self.parallel_weight = (
            nn.Parameter(torch.tensor(float(c.parallel_weight))) if c.parallel_weight != 0.0 else None
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for emb in (self.performer_embed, self.agent_embed, self.position_embed):
            nn.init.normal_(emb.weight, std=0.1)
        # A small policy head starts near uniform, which PPO and DQN both prefer.
        nn.init.normal_(self.policy_head.weight, std=0.01)
        nn.init.zeros_(self.policy_head.bias)
        if self.value_head is not None:
            nn.init.normal_(self.value_head.weight, std=0.01)
            nn.init.zeros_(self.value_head.bias)
        if self.style_proj is not None:
            nn.init.zeros_(self.style_proj.weight)
            nn.init.zeros_(self.style_proj.bias)

    def trunk_and_context(
        self,
        performer: torch.Tensor,
        agent: torch.Tensor,
        position: torch.Tensor,
        style: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Sounding | None]:
        """``(trunk output [B, hidden], the sounding pitches)`` (the pitches only with musical features).

        ``style`` [B, style_dim] is added to the first layer's pre-activation through ``style_proj``; a
        style network called without it gets zeros (the VAE prior's mean)."""
        b = performer.shape[0]
        performer = performer.clamp(0, VOCAB_SIZE - 1)
        agent = agent.clamp(0, VOCAB_SIZE - 1)
        k = self.config.embedded_steps
        perf = self.performer_embed(performer[:, -k:]).reshape(b, -1)
        ag = self.agent_embed(agent[:, -k:]).reshape(b, -1)
        pos = self.position_embed(torch.remainder(position, self.config.steps_per_bar))
        parts = [perf, ag, pos]
        sounding = None
        if self.musical is not None:
            feats, sounding = self.musical(performer, agent)
            parts.append(feats)
        x = torch.cat(parts, dim=1)
        if self.style_proj is None:
            return self.trunk(x), sounding
        if style is None:
            style = x.new_zeros(b, self.style_proj.in_features)
        h = self.trunk[0](x) + self.style_proj(style)
        return self.trunk[1:](h), sounding

    def features(self, performer: torch.Tensor, agent: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """The shared trunk's output ``[B, hidden]``."""
        return self.trunk_and_context(performer, agent, position)[0]

    def heads(
        self,
        performer: torch.Tensor,
        agent: torch.Tensor,
        position: torch.Tensor,
        style: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(logits [B, 130], trunk [B, hidden], aux logits [B, 130] or None)`` from one trunk pass."""
        h, sounding = self.trunk_and_context(performer, agent, position, style)
        logits = self.policy_head(h)
        aux = self.aux_head(h) if self.aux_head is not None else None
        if self.ec is not None:
            assert sounding is not None, "the expected-consonance terms need musical features"
            # The performer's pitch class at the decided step: heard (follow) or predicted (anticipate).
            if hears_current_step(self.config.mode):
                pc_probs = self.ec.pc_of(sounding.performer)
            else:
                assert aux is not None
                probs = torch.softmax(aux.detach(), dim=1)
                pc_probs = self.ec.pc_probs_from_tokens(probs, sounding.performer)
                if self.relative is not None:  # key-free while the performer sounds; the aux head's else
                    perf1 = sounding.performer
                    rel = self.relative.pc_probs(self.relative(performer, position, perf1), perf1)
                    pc_probs = torch.where(perf1.unsqueeze(1) > 0, rel, pc_probs)
            if self.ec_weight is not None:
                logits = logits + self.ec_weight * self.ec(pc_probs, sounding.agent)
            if self.parallel_weight is not None:
                logits = logits - self.parallel_weight * self.ec.parallels(pc_probs, sounding)
        return logits, h, aux

    def forward(
        self,
        performer: torch.Tensor,
        agent: torch.Tensor,
        position: torch.Tensor,
        style: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (or Q values) ``[B, 130]``: the only path that is exported (with ``style`` when the
        network has ``style_dim``)."""
        return self.heads(performer, agent, position, style)[0]

    def forward_with_value(
        self, performer: torch.Tensor, agent: torch.Tensor, position: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [B, 130], value [B])`` from one trunk pass (needs ``value_head=True``)."""
        if self.value_head is None:
            raise RuntimeError("this PolicyNet was built without a value head (NetConfig.value_head=False)")
        logits, h, _ = self.heads(performer, agent, position)
        return logits, self.value_head(h).squeeze(-1)

    def value(self, performer: torch.Tensor, agent: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """The critic's estimate ``[B]`` (needs ``value_head=True``)."""
        return self.forward_with_value(performer, agent, position)[1]

    def add_value_head(self) -> None:
        """Attach a fresh critic head (e.g. to fine-tune an MLE prior with PPO); updates the config."""
        if self.value_head is None:
            dev = self.policy_head.weight.device
            self.value_head = nn.Linear(self.config.hidden, 1).to(dev)
            nn.init.normal_(self.value_head.weight, std=0.01)
            nn.init.zeros_(self.value_head.bias)
            self.config = dataclasses.replace(self.config, value_head=True)

    def logits_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights of the exported path only (no value head)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("value_head.")}


def param_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def obs_to_tensors(
    performer: Any, agent: Any, position: Any, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Contract arrays (numpy, any integer dtype) -> int64 tensors on ``device``."""
    return (
        torch.as_tensor(performer, dtype=torch.int64, device=device),
        torch.as_tensor(agent, dtype=torch.int64, device=device),
        torch.as_tensor(position, dtype=torch.int64, device=device),
    )


class TorchPolicy:
    """A :class:`PolicyNet` as a numpy-world policy: ``policy(obs) -> float32 logits [B, 130]``.

    Lets `liveagent eval` and the tests score a checkpoint without exporting it first.
    """

    def __init__(self, net: PolicyNet) -> None:
        self.net = net.eval()
        self.config = net.config

    def __call__(self, obs: Any) -> Any:
        with torch.inference_mode():
            tensors = obs_to_tensors(obs.performer, obs.agent, obs.position)
            return self.net(*tensors).numpy().astype("float32", copy=False)
