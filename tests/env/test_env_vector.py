"""BatchedAccompanimentEnv: identical to N single envs, autoreset with final info, the API's shapes."""

from __future__ import annotations

import numpy as np
import pytest

from liveagent.env.accompaniment import AccompanimentEnv, EnvConfig
from liveagent.env.rewards import TERMS
from liveagent.env.vector import BatchedAccompanimentEnv
from liveagent.music.features import ObservationBuffers
from liveagent.music.piece import Piece
from liveagent.music.theory import Key
from liveagent.music.tokens import REST, Note, notes_to_tokens


def random_piece(rng: np.random.Generator, name: str, bars: int) -> Piece:
    """A random melody (eighths and quarters, some rests) over a random quarter/half-note bass."""
    steps = 16 * bars

    def part(lo: int, hi: int, lengths: list[int]) -> np.ndarray:
        notes, t = [], 0
        while t < steps:
            n = int(rng.choice(lengths))
            if rng.random() > 0.15:
                notes.append(Note(t, n, int(rng.integers(lo, hi))))
            t += n
        return notes_to_tokens(notes, steps)

    return Piece(name, part(60, 80, [2, 4, 4]), part(40, 60, [4, 8]), key=Key(int(rng.integers(12)), "minor"))


PIECES = [random_piece(np.random.default_rng(i), f"r{i}", bars) for i, bars in enumerate((3, 5, 4, 2))]


def test_vector_equals_single_envs_step_by_step() -> None:
    cfg = EnvConfig(window=8, transpose=False)
    n = len(PIECES)
    vec = BatchedAccompanimentEnv(PIECES, n, cfg)
    vobs, vinfo = vec.reset(seed=3, options={"pieces": np.arange(n)})
    singles = [AccompanimentEnv(PIECES, cfg) for _ in range(n)]
    sobs = [env.reset(seed=i, options={"piece": i})[0] for i, env in enumerate(singles)]
    alive = np.ones(n, dtype=bool)
    rng = np.random.default_rng(0)
    allowed = np.flatnonzero(vinfo["action_mask"][0])
    for _ in range(max(p.n_steps for p in PIECES)):
        for i in np.flatnonzero(alive):
            assert vobs.performer[i].tolist() == sobs[i]["performer"].tolist()
            assert vobs.agent[i].tolist() == sobs[i]["agent"].tolist()
            assert vobs.position[i] == sobs[i]["position"]
        actions = rng.choice(allowed, size=n)
        vobs, vr, vterm, vtrunc, vinfo = vec.step(actions)
        for i in np.flatnonzero(alive):
            o, r, term, trunc, info = singles[i].step(int(actions[i]))
            assert vr[i] == pytest.approx(r, abs=1e-6)
            for name, value in info["reward_terms"].items():
                assert vinfo["reward_terms"][name][i] == pytest.approx(value, abs=1e-6), name
            assert (bool(vterm[i]), bool(vtrunc[i])) == (term, trunc)
            if term or trunc:
                assert vinfo["episode_return"][i] == pytest.approx(info["episode_return"], abs=1e-4)
                assert vinfo["final_obs"].agent[i].tolist() == o["agent"].tolist()
                alive[i] = False
            else:
                sobs[i] = o
    assert not alive.any()


def test_autoreset_reports_finished_episodes() -> None:
    vec = BatchedAccompanimentEnv(PIECES, 3, EnvConfig(window=4, phrase_steps=16), seed=0)
    obs, info = vec.reset()
    assert isinstance(obs, ObservationBuffers) and obs.performer.shape == (3, 4)
    returns = np.zeros(3, dtype=np.float32)
    for t in range(16):
        obs, rewards, term, trunc, info = vec.step(np.full(3, REST))
        assert rewards.dtype == np.float32 and rewards.shape == (3,)
        returns += rewards
        assert set(info["reward_terms"]) == set(TERMS)
        if t < 15:
            assert not info["done"].any() and info["final_obs"] is None
    assert info["done"].all() and (term | trunc).all()
    np.testing.assert_allclose(info["episode_return"], returns, atol=1e-4)
    assert info["episode_length"].tolist() == [16, 16, 16]
    total = sum(info["episode_reward_terms"].values())
    np.testing.assert_allclose(total, returns, atol=1e-4)
    assert info["t"].tolist() == [0, 0, 0]  # new episodes started in the same step
    assert (obs.agent == REST).all() and (obs.position == 0).all()
    assert (info["final_obs"].position == 0).all()  # after 16 steps the next position is 0 again


def test_pieces_and_transpositions_are_drawn_per_env() -> None:
    vec = BatchedAccompanimentEnv(PIECES, 64, EnvConfig(window=4, pitch_min=36, pitch_max=64), seed=1)
    _, info = vec.reset()
    assert set(info["piece"].tolist()) == set(range(len(PIECES)))
    assert len(set(info["transpose"].tolist())) > 4
    expert = vec.expert_actions()
    for i in range(64):
        assert expert[i] == PIECES[info["piece"][i]].transposed(int(info["transpose"][i])).accompaniment[0]


def test_seeded_resets_are_reproducible() -> None:
    a = BatchedAccompanimentEnv(PIECES, 8, EnvConfig(window=4))
    b = BatchedAccompanimentEnv(PIECES, 8, EnvConfig(window=4))
    _, ia = a.reset(seed=7)
    _, ib = b.reset(seed=7)
    assert ia["piece"].tolist() == ib["piece"].tolist()
    assert ia["transpose"].tolist() == ib["transpose"].tolist()


def test_action_mask_and_errors() -> None:
    vec = BatchedAccompanimentEnv(PIECES, 2, EnvConfig(window=4, pitch_min=36, pitch_max=64))
    with pytest.raises(RuntimeError):
        vec.step(np.zeros(2, dtype=np.int64))
    _, info = vec.reset(seed=0)
    assert info["action_mask"].shape == (2, 130) and info["action_mask"].dtype == bool
    assert info["action_mask"][:, 2 + 36 : 2 + 65].all() and not info["action_mask"][:, 2 + 65 :].any()
    with pytest.raises(ValueError):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError):
        vec.step(np.array([0, 131]))
    with pytest.raises(ValueError):
        BatchedAccompanimentEnv(PIECES, 2, learned_terms={"consonance": (1.0, lambda o, a: a * 0.0)})


def test_learned_terms_are_batched() -> None:
    calls: list[int] = []

    def disc(obs: ObservationBuffers, actions: np.ndarray) -> np.ndarray:
        calls.append(obs.performer.shape[0])
        return (actions == REST).astype(np.float32)

    vec = BatchedAccompanimentEnv(PIECES, 4, EnvConfig(window=4), learned_terms={"disc": (2.0, disc)})
    vec.reset(seed=0)
    _, rewards, _, _, info = vec.step(np.array([REST, REST, 2 + 48, 2 + 50]))
    assert calls == [4]
    assert info["reward_terms"]["disc"].tolist() == [2.0, 2.0, 0.0, 0.0]
    np.testing.assert_allclose(rewards, sum(info["reward_terms"].values()), atol=1e-6)


def test_learned_term_added_after_construction() -> None:
    vec = BatchedAccompanimentEnv(PIECES, 2, EnvConfig(window=4, phrase_steps=16), seed=0)
    vec.reset(seed=0)
    vec.step(np.full(2, REST))
    vec.learned_terms["bonus"] = (1.0, lambda obs, a: np.ones(a.shape[0]))
    for _ in range(15):
        *_, info = vec.step(np.full(2, REST))
        assert info["reward_terms"]["bonus"].tolist() == [1.0, 1.0]
    assert info["done"].all()
    assert info["episode_reward_terms"]["bonus"].tolist() == [15.0, 15.0]
    np.testing.assert_allclose(sum(info["episode_reward_terms"].values()), info["episode_return"], atol=1e-4)
