"""Review of the key-free next-note predictor (anticipate mode): what it may see, how its pitch classes are
read, and how PPO builds an actor around it. Pure-logic unit tests on toy data."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch

from liveagent.music.features import ObservationBuffers, build_observation
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, VOCAB_SIZE
from liveagent.train.data import toy_pieces
from liveagent.train.musical_features import ExpectedConsonance, MusicalFeatures
from liveagent.train.networks import NetConfig, PolicyNet
from liveagent.train.relative_predictor import REL_CLASSES, REL_CLIP, RelativePredictor
from liveagent.train.rl_common import RLSetup

torch.set_num_threads(1)
REL_HOLD, REL_REST = 2 * REL_CLIP + 1, 2 * REL_CLIP + 2


def _config() -> NetConfig:
    return NetConfig(window=32, recent=8, mode="anticipate", musical_features=True, aux_head=True,
                     ec_weight=3.0, parallel_weight=2.0, relative_predictor=16)  # fmt: skip


def test_pc_probs_match_the_aux_heads_reading_of_the_same_token_distribution() -> None:
    """The roll by the sounding pitch class, HOLD (the sounding pc) and REST (left out) read as the aux
    head's distribution over absolute tokens would be."""
    torch.manual_seed(0)
    model = RelativePredictor(steps=8, steps_per_bar=16)
    ec = ExpectedConsonance()
    perf1 = torch.tensor([61, 67, 1, 128, 50])  # pitch + 1: C4, F#4, C-1, G9, C#3
    logits = torch.randn(len(perf1), REL_CLASSES)
    rel = torch.softmax(logits, dim=1)
    tokens = torch.zeros(len(perf1), VOCAB_SIZE)
    for b, p1 in enumerate(perf1.tolist()):
        for c in range(2 * REL_CLIP + 1):  # onset classes: this interval from the sounding pitch
            pitch = (p1 - 1) + c - REL_CLIP
            pitch = pitch % 12 + 12 * 5 if not 0 <= pitch <= 127 else pitch  # same pc, inside MIDI
            tokens[b, ONSET_BASE + pitch] += rel[b, c]
        tokens[b, HOLD] = rel[b, REL_HOLD]
        tokens[b, REST] = rel[b, REL_REST]
    want = ec.pc_probs_from_tokens(tokens, perf1)
    got = model.pc_probs(logits, perf1)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(got.sum(1), 1.0 - rel[:, REL_REST], atol=1e-6)


def test_the_decided_steps_note_never_reaches_the_anticipating_network() -> None:
    """Windows from the shared builder (training, env and eval): changing the performer's token at the
    decided step t, or any later one, leaves every output (logits and the predictor's) unchanged."""
    torch.manual_seed(0)
    net = PolicyNet(_config()).eval()
    assert net.relative is not None and net.musical is not None
    piece = toy_pieces(1, seed=3)[0]
    w, spb = net.config.window, piece.grid.steps_per_bar
    steps = np.arange(w, piece.n_steps, dtype=np.int64)
    outs = []
    for variant in range(2):
        perf = np.broadcast_to(piece.performer.astype(np.int64), (len(steps), piece.n_steps)).copy()
        if variant:  # the decided step and the future: another note
            for i, t in enumerate(steps):
                perf[i, t:] = ONSET_BASE + 40 + (t % 7)
        obs = ObservationBuffers.allocate(len(steps), w)
        acc = np.broadcast_to(piece.accompaniment.astype(np.int64), perf.shape)
        build_observation(perf, acc, steps, window=w, steps_per_bar=spb, mode="anticipate", out=obs)
        p, a, pos = (torch.from_numpy(x) for x in (obs.performer, obs.agent, obs.position))
        with torch.no_grad():
            logits, _, aux = net.heads(p, a, pos)
            perf1 = net.musical.sounding1(p)
            rel = net.relative(p, pos, perf1)
        outs.append((logits, aux, rel))
    for x, y in zip(outs[0], outs[1], strict=True):
        assert x is not None and y is not None and torch.equal(x, y)


def test_a_prior_that_already_has_a_fitted_predictor_keeps_it(tmp_path: Path) -> None:
    from liveagent.train.ppo import build_actor

    torch.manual_seed(0)
    prior = PolicyNet(_config()).eval()
    assert prior.relative is not None
    last = prior.relative.mlp[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():  # stands for a fitted predictor
        last.bias.copy_(torch.linspace(-2.0, 2.0, REL_CLASSES))
    fitted = {k: v.clone() for k, v in prior.relative.state_dict().items()}
    env_config = types.SimpleNamespace(key_change_prob=0.0)
    setup = RLSetup(out=tmp_path, recipe={}, seed=0, threads=1, prior_path=tmp_path / "prior.pt", prior=prior,
                    pieces=toy_pieces(4, seed=0), env_config=env_config)  # fmt: skip
    actor = build_actor(setup, relative_fit_steps=5)
    assert actor.relative is not None
    for k, v in actor.relative.state_dict().items():
        assert torch.equal(v, fitted[k]), k


def test_sounding_reference_is_the_last_step_of_the_anticipate_window() -> None:
    """perf1 (what the predictor is relative to) is the pitch sounding at t-1, the window's last step."""
    sounding = MusicalFeatures(window=4, hears_current=False).sounding1
    perf = torch.tensor([[ONSET_BASE + 60, HOLD, HOLD, HOLD], [ONSET_BASE + 60, HOLD, REST, HOLD]])
    assert sounding(perf).tolist() == [61, 0]
