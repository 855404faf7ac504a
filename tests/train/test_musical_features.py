"""The features computed inside the network and the expected-consonance term, checked by hand and through
ONNX (they are part of the exported graph, so onnxruntime must compute them exactly as torch does)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liveagent.music.tokens import HOLD, REST, onset
from liveagent.train.musical_features import ExpectedConsonance, MusicalFeatures, feature_dim
from liveagent.train.networks import NetConfig, PolicyNet


def windows(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int64)


def test_sounding_pitch_follows_holds_and_rests() -> None:
    f = MusicalFeatures(window=4, hears_current=False)
    w = windows(
        [REST, onset(60), HOLD, HOLD],  # C4 held
        [onset(60), HOLD, REST, HOLD],  # silent: HOLD after REST is REST
        [HOLD, HOLD, HOLD, HOLD],  # held from before the window: unknown, silent
        [onset(60), onset(62), HOLD, onset(67)],  # the last onset
    )
    assert (f.sounding1(w) - 1).tolist() == [60, -1, -1, 67]
    # Follow mode: the step both windows share is the performer's second-to-last.
    assert (f.sounding1(w, before_last=True) - 1).tolist() == [60, -1, -1, 62]


def test_line_features_melodic_interval_since_and_histogram() -> None:
    f = MusicalFeatures(window=8, hears_current=False)
    perf = windows([onset(60), HOLD, onset(64), HOLD, onset(67), HOLD, HOLD, HOLD])
    agent = windows([onset(48), HOLD, HOLD, HOLD, HOLD, HOLD, HOLD, HOLD])
    feats, sounding = f(perf, agent)
    assert feats.shape == (1, feature_dim())
    assert (sounding.performer - 1).tolist() == [67] and (sounding.agent - 1).tolist() == [48]
    line = feats[0, : 12 + 2 + 25 + 1 + 12]
    assert line[:12].argmax().item() == 7 and line[:12].sum().item() == 1.0  # G
    assert line[12].item() == 1.0 and line[13].item() == pytest.approx(68 / 128)  # present, register
    moves = line[14 : 14 + 25]
    assert moves.argmax().item() - 12 == 3 and moves.sum().item() == 1.0  # E4 -> G4: +3
    assert line[39].item() == pytest.approx(3 / 8)  # last onset 3 steps before the window's end
    hist = line[40:52]
    assert hist[[0, 4, 7]].tolist() == pytest.approx([1 / 3] * 3)
    # Vertical interval now: G4 over C3 = 19 semitones = a fifth (7).
    ic_now = feats[0, 2 * 52 : 2 * 52 + 12]
    assert ic_now.argmax().item() == 7 and ic_now.sum().item() == 1.0


def test_expected_consonance_scores_tokens_by_their_sounding_pitch() -> None:
    ec = ExpectedConsonance()
    sure_g = torch.zeros(1, 12)
    sure_g[0, 7] = 1.0  # the performer will sound a G
    agent1 = torch.tensor([60 + 1])  # agent sounds C4 (a fifth below G: consonant)
    score = ec(sure_g, agent1)[0]
    assert score[onset(43)].item() == 1.0  # G2: unison class
    assert score[onset(48)].item() == 1.0  # C3 under G: a fifth
    assert score[onset(50)].item() == -1.0  # D3 under G: a fourth (dissonant against the bass)
    assert score[onset(54)].item() == -1.0  # F#3: a minor second
    assert score[HOLD].item() == 1.0 and score[REST].item() == 0.0
    # A split belief gives the expectation: half G, half G#.
    split = torch.zeros(1, 12)
    split[0, 7] = split[0, 8] = 0.5
    # C#3: a tritone under G (-1), a fifth under G# (+1) -> 0; C3: a fifth under G, a minor sixth under G#.
    assert ec(split, agent1)[0, onset(49)].item() == pytest.approx(0.0)
    assert ec(split, agent1)[0, onset(48)].item() == pytest.approx(1.0)


def test_pc_probs_from_tokens_adds_hold_to_the_sounding_pitch() -> None:
    ec = ExpectedConsonance()
    probs = torch.zeros(1, 130)
    probs[0, HOLD] = 0.5
    probs[0, onset(62)] = 0.3
    probs[0, REST] = 0.2
    pc = ec.pc_probs_from_tokens(probs, torch.tensor([64 + 1]))[0]
    assert pc[4].item() == pytest.approx(0.5) and pc[2].item() == pytest.approx(0.3)
    assert pc.sum().item() == pytest.approx(0.8)


@pytest.mark.parametrize("mode", ["anticipate", "follow"])
def test_feature_network_exports_to_onnx_with_parity(mode: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from liveagent.train.export import OUTPUT_NAME, WithPerformerNext, export_onnx, onnx_session

    cfg = NetConfig(window=64, recent=16, mode=mode, musical_features=True, aux_head=True, ec_weight=1.5)  # type: ignore[arg-type]
    torch.manual_seed(0)
    net = PolicyNet(cfg).eval()
    path = export_onnx(
        WithPerformerNext(net), cfg, tmp_path / "p.onnx", {"k": "v"}, (OUTPUT_NAME, "performer_next")
    )
    sess = onnx_session(path)
    rng = np.random.default_rng(0)
    perf = rng.integers(0, 130, (64, 64))
    perf[:8] = REST  # silent windows too
    agent = rng.integers(0, 130, (64, 64))
    pos = rng.integers(0, 16, 64)
    logits, aux = sess.run(None, {"performer": perf, "agent": agent, "position": pos})
    with torch.no_grad():
        ref, _, ref_aux = net.heads(torch.from_numpy(perf), torch.from_numpy(agent), torch.from_numpy(pos))
    assert ref_aux is not None
    assert np.abs(logits - ref.numpy()).max() < 1e-4 and np.abs(aux - ref_aux.numpy()).max() < 1e-4
    assert (logits.argmax(1) == ref.numpy().argmax(1)).all()


def test_ec_weight_moves_the_argmax_towards_consonance() -> None:
    """Follow mode: with the heard melody note known, a large weight makes every onset choice consonant."""
    torch.manual_seed(0)
    cfg = NetConfig(
        window=16, mode="follow", musical_features=True, ec_weight=50.0, pitch_min=36, pitch_max=64
    )
    net = PolicyNet(cfg).eval()
    perf = windows(*[[REST] * 15 + [onset(60 + i)] for i in range(12)])
    agent = windows(*[[REST] * 16 for _ in range(12)])
    with torch.no_grad():
        logits = net(perf, agent, torch.zeros(12, dtype=torch.int64))
    onsets = logits[:, onset(36) : onset(64) + 1].argmax(1) + 36
    table = torch.tensor([True, False, False, True, True, False, False, True, True, True, False, False])
    for i, p in enumerate(onsets.tolist()):
        assert table[(60 + i - p) % 12], f"melody {60 + i}: chose {p}"


def test_shift_past_moves_only_the_steps_before_the_cut() -> None:
    from liveagent.train.data import shift_past

    rng = np.random.default_rng(0)
    perf = np.tile(np.array([onset(60), HOLD, onset(62), HOLD] * 8, dtype=np.int64), (200, 1))
    agent = np.tile(np.array([onset(48), HOLD, HOLD, REST] * 8, dtype=np.int64), (200, 1))
    p0, a0 = perf.copy(), agent.copy()
    shift_past(perf, agent, rng, 0.5, recent=16)
    changed = (perf != p0).any(axis=1)
    assert 60 < changed.sum() < 140
    for r in np.flatnonzero(changed):
        diff = np.flatnonzero(perf[r] != p0[r])
        d = int(perf[r, diff[0]] - p0[r, diff[0]])
        assert 1 <= abs(d) <= 6 and diff.max() < 32 and diff.max() >= 32 - 16 - 4
        # Everything after the last moved step is untouched; HOLD and REST never move.
        assert (perf[r, diff.max() + 1 :] == p0[r, diff.max() + 1 :]).all()
        assert ((agent[r] - a0[r])[a0[r] >= 2] == d).sum() >= 1
        assert (agent[r][a0[r] < 2] == a0[r][a0[r] < 2]).all()


def test_parallel_risk_marks_the_onsets_that_repeat_a_perfect_interval() -> None:
    from liveagent.train.musical_features import Sounding

    ec = ExpectedConsonance()
    # Agent C3 under the performer's G4 (a fifth) at t-1; the performer is sure to sound A4 at t.
    sounding = Sounding(
        performer=torch.tensor([69 + 1]),
        agent=torch.tensor([48 + 1]),
        performer_aligned=torch.tensor([67 + 1]),
    )
    sure_a = ec.pc_of(torch.tensor([69 + 1]))
    risk = ec.parallels(sure_a, sounding)[0]
    assert risk[onset(50)].item() == 1.0 and risk[onset(38)].item() == 1.0  # D: D-A is a fifth again
    assert risk[onset(53)].item() == 0.0 and risk[HOLD].item() == 0.0 and risk[REST].item() == 0.0
    # From a third (E3 under G4) nothing is parallel.
    third = Sounding(sounding.performer, torch.tensor([52 + 1]), sounding.performer_aligned)
    assert not ec.parallels(sure_a, third).any()


def test_parallel_weight_steers_a_follow_policy_off_parallel_octaves() -> None:
    torch.manual_seed(0)
    cfg = NetConfig(
        window=16, mode="follow", musical_features=True, parallel_weight=100.0, pitch_min=36, pitch_max=64
    )
    net = PolicyNet(cfg).eval()
    with torch.no_grad():
        net.policy_head.bias[onset(50)] = 20.0  # the net wants D3 ...
        perf = windows([REST] * 14 + [onset(60), onset(62)])  # ... where the melody goes C4 -> D4
        agent = windows([REST] * 15 + [onset(48)])  # from C3: C-C then D-D would be parallel octaves
        choice = net(perf, agent, torch.zeros(1, dtype=torch.int64))[0, 2:].argmax().item()
    assert choice % 12 != 2
