"""PolicyNet: contract shapes, heads, robustness to out-of-contract inputs, config round trips."""

from __future__ import annotations

import pytest
import torch

from liveagent.music.tokens import VOCAB_SIZE
from liveagent.train.export import random_observations
from liveagent.train.networks import NetConfig, PolicyNet, TorchPolicy, param_count

torch.set_num_threads(1)


def _inputs(cfg: NetConfig, b: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randint(0, VOCAB_SIZE, (b, cfg.window), generator=g),
        torch.randint(0, VOCAB_SIZE, (b, cfg.window), generator=g),
        torch.randint(0, cfg.steps_per_bar, (b,), generator=g),
    )


def test_logits_shape_and_dtype() -> None:
    cfg = NetConfig(window=8, hidden=32, embed_dim=4)
    net = PolicyNet(cfg).eval()
    out = net(*_inputs(cfg))
    assert out.shape == (5, VOCAB_SIZE)
    assert out.dtype == torch.float32


def test_value_head_shares_trunk_and_is_optional() -> None:
    cfg = NetConfig(window=8, hidden=32, embed_dim=4, value_head=True)
    net = PolicyNet(cfg).eval()
    x = _inputs(cfg)
    logits, value = net.forward_with_value(*x)
    assert logits.shape == (5, VOCAB_SIZE) and value.shape == (5,)
    assert torch.allclose(logits, net(*x))
    assert torch.allclose(value, net.value(*x))
    assert not any(k.startswith("value_head") for k in net.logits_state_dict())

    plain = PolicyNet(NetConfig(window=8, hidden=32, embed_dim=4))
    with pytest.raises(RuntimeError, match="value head"):
        plain.forward_with_value(*x)
    n_before = param_count(plain)
    plain.add_value_head()
    assert plain.config.value_head and param_count(plain) == n_before + 33
    assert plain.value(*x).shape == (5,)


def test_out_of_contract_inputs_do_not_crash() -> None:
    cfg = NetConfig(window=4, hidden=16, embed_dim=4)
    net = PolicyNet(cfg).eval()
    perf = torch.tensor([[-3, 0, 129, 500]])
    pos = torch.tensor([cfg.steps_per_bar + 3])
    out = net(perf, perf, pos)
    assert torch.isfinite(out).all()
    # Position wraps modulo the bar: 19 is the same step as 3.
    assert torch.allclose(out, net(perf, perf, torch.tensor([3])))


def test_output_depends_on_every_input() -> None:
    cfg = NetConfig(window=8, hidden=32, embed_dim=4, dropout=0.0)
    net = PolicyNet(cfg).eval()
    perf, agent, pos = _inputs(cfg, 1)
    base = net(perf, agent, pos)
    for changed in (
        net(perf.roll(1, dims=1), agent, pos),
        net(perf, agent.roll(1, dims=1), pos),
        net(perf, agent, (pos + 1) % cfg.steps_per_bar),
    ):
        assert not torch.allclose(base, changed)


def test_config_round_trip_and_validation() -> None:
    cfg = NetConfig(window=12, mode="react", pitch_min=40, pitch_max=60, extra={"note": "x"})
    assert NetConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.steps_per_bar == 16
    with pytest.raises(ValueError, match="unknown"):
        NetConfig.from_dict(cfg.to_dict() | {"hiden": 3})
    with pytest.raises(ValueError):
        NetConfig(mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        NetConfig(pitch_min=70, pitch_max=60)


def test_torch_policy_is_a_numpy_policy() -> None:
    cfg = NetConfig(window=8, hidden=32, embed_dim=4)
    policy = TorchPolicy(PolicyNet(cfg))
    logits = policy(random_observations(3, cfg))
    assert logits.shape == (3, VOCAB_SIZE) and str(logits.dtype) == "float32"
