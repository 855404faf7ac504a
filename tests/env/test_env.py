"""AccompanimentEnv: gymnasium compliance, the online timing of observations, transposition, phrases."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from liveagent.env import ENV_ID
from liveagent.env.accompaniment import AccompanimentEnv, EnvConfig
from liveagent.env.rewards import TERMS, RewardConfig
from liveagent.music.features import Mode, ObservationBuffers
from liveagent.music.piece import Piece
from liveagent.music.theory import Key
from liveagent.music.tokens import HOLD, REST, Note, notes_to_tokens, onset, pitch_range


def make_piece(
    name: str = "p", bars: int = 4, melody: int = 72, bass: int = 48, key: Key | None = None
) -> Piece:
    """Quarter-note melody over half-note bass, in C major."""
    steps = 16 * bars
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    mel = [Note(4 * i, 4, melody + scale[i % 8]) for i in range(steps // 4)]
    bas = [Note(8 * i, 8, bass + [0, 7, 5, 0][i % 4]) for i in range(steps // 8)]
    return Piece(name, notes_to_tokens(mel, steps), notes_to_tokens(bas, steps), key=key or Key(0, "major"))


SMALL = EnvConfig(window=8, transpose=False)


def test_check_env_passes() -> None:
    check_env(AccompanimentEnv([make_piece()], SMALL), skip_render_check=True)
    check_env(AccompanimentEnv([make_piece(), make_piece("q", bars=2)], EnvConfig()), skip_render_check=True)


def test_registered_and_made_by_id() -> None:
    env = gym.make(ENV_ID, pieces=[make_piece()], config=SMALL)
    obs, info = env.reset(seed=1)
    assert env.spec is not None and env.spec.id == "liveagent/Accompany-v0"
    assert set(obs) == {"performer", "agent", "position"}
    assert info["action_mask"].shape == (130,)
    env.close()


def test_anticipate_sees_only_the_past_react_sees_the_present() -> None:
    piece = make_piece()
    modes: tuple[tuple[Mode, int], ...] = (("anticipate", 0), ("react", 1))
    for mode, lag in modes:
        env = AccompanimentEnv([piece], EnvConfig(window=4, mode=mode, transpose=False))
        obs, _ = env.reset(seed=0)
        for t in range(6):
            perf_end = t + lag
            expect = [piece.performer[i] if i >= 0 else REST for i in range(perf_end - 4, perf_end)]
            assert obs["performer"].tolist() == expect, (mode, t)
            assert obs["position"] == t % 16
            obs, *_ = env.step(onset(48))


def test_agent_history_is_the_resolved_tokens() -> None:
    env = AccompanimentEnv([make_piece()], EnvConfig(window=4, transpose=False))
    env.reset(seed=0)
    for a in (HOLD, onset(48), HOLD, REST):
        obs, *_ = env.step(a)
    assert obs["agent"].tolist() == [REST, onset(48), HOLD, REST]  # the first HOLD (silent) became REST


def test_reward_terms_sum_to_the_reward_and_expert_plays_the_piece() -> None:
    piece = make_piece()
    env = AccompanimentEnv([piece], SMALL)
    env.reset(seed=0)
    played, total, steps = [], 0.0, 0
    while True:
        a = env.expert_action()
        played.append(a)
        _, r, term, trunc, info = env.step(a)
        assert set(info["reward_terms"]) == set(TERMS)
        assert r == pytest.approx(sum(info["reward_terms"].values()), abs=1e-5)
        total += r
        steps += 1
        if term or trunc:
            break
    assert term and not trunc
    assert steps == piece.n_steps
    assert played == piece.accompaniment.tolist()
    assert info["episode_return"] == pytest.approx(total, abs=1e-4)
    assert info["episode_length"] == piece.n_steps


def test_action_mask_is_the_agent_range() -> None:
    env = AccompanimentEnv([make_piece()], EnvConfig(pitch_min=40, pitch_max=50, transpose=False))
    _, info = env.reset(seed=0)
    allowed = np.flatnonzero(info["action_mask"])
    assert allowed.tolist() == [REST, HOLD, *range(onset(40), onset(50) + 1)]


def test_transposition_keeps_the_bass_in_range_and_moves_the_key() -> None:
    piece = make_piece()  # bass 48..55, melody 72..84
    env = AccompanimentEnv([piece], EnvConfig(pitch_min=40, pitch_max=60))
    shifts = set()
    for seed in range(60):
        _, info = env.reset(seed=seed)
        k = info["transpose"]
        shifts.add(k)
        assert -8 <= k <= 5  # 48 + k >= 40 and 55 + k <= 60
        assert info["key"] == str(Key(0, "major").transposed(k))
        line = [env.expert_action()]
        for _ in range(15):
            env.step(REST)
            line.append(env.expert_action())
        lo, hi = pitch_range(np.array(line))  # type: ignore[misc]
        assert (lo, hi) == (48 + k, 55 + k)
    assert len({s % 12 for s in shifts}) == 12  # every key is reachable (14 shifts fit, one per key drawn)


def test_in_key_follows_the_transposition() -> None:
    env = AccompanimentEnv([make_piece()], EnvConfig(pitch_min=36, pitch_max=64))
    _, info = env.reset(seed=0, options={"piece": 0, "transpose": 2})  # D major: F# in key, F not
    assert info["key"] == "D major"
    _, _, _, _, info = env.step(onset(54))
    assert info["reward_terms"]["in_key"] == 0.0
    env.reset(seed=0, options={"piece": 0, "transpose": 2})
    _, _, _, _, info = env.step(onset(53))
    assert info["reward_terms"]["in_key"] == -1.0


def test_phrases_are_bar_aligned_and_truncated_before_the_end() -> None:
    piece = make_piece(bars=4)
    env = AccompanimentEnv([piece], EnvConfig(window=4, transpose=False, phrase_steps=32))
    for start, ends in ((0, False), (16, False), (32, True)):
        env.reset(seed=0, options={"piece": 0, "start": start})
        assert env.expert_action() == piece.accompaniment[start]
        for t in range(32):
            _, _, term, trunc, _ = env.step(REST)
            done = term or trunc
            assert done == (t == 31)
        assert (term, trunc) == (ends, not ends)
    starts = {env.reset(seed=seed)[1]["start"] for seed in range(40)}
    assert starts == {0, 16, 32}  # random phrases start on a barline and fit in the piece


def test_pinned_phrase_start_must_be_on_a_barline() -> None:
    env = AccompanimentEnv([make_piece()], EnvConfig(transpose=False, phrase_steps=16))
    with pytest.raises(ValueError):
        env.reset(seed=0, options={"piece": 0, "start": 4})


def test_made_without_pieces_loads_the_train_split(monkeypatch: pytest.MonkeyPatch) -> None:
    import liveagent.env.vector as vector

    asked: list[str] = []

    def fake(config: EnvConfig) -> list[Piece]:
        asked.append(config.split)
        return [make_piece()]

    monkeypatch.setattr(vector, "default_pieces", fake)
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    assert asked == ["train"]
    env.close()


def test_learned_terms_see_the_decision_observation() -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def prior(obs: ObservationBuffers, actions: np.ndarray) -> np.ndarray:
        seen.append((obs.agent.copy(), actions.copy()))
        return np.full(actions.shape, -2.0)

    env = AccompanimentEnv(
        [make_piece()], EnvConfig(window=4, transpose=False), learned_terms={"prior": (0.5, prior)}
    )
    env.reset(seed=0)
    env.step(onset(48))
    _, r2, _, _, info = env.step(onset(50))
    assert seen[0][0].tolist() == [[REST] * 4] and seen[0][1].tolist() == [onset(48)]
    assert seen[1][0].tolist() == [[REST, REST, REST, onset(48)]]
    assert info["reward_terms"]["prior"] == -1.0
    assert r2 == pytest.approx(sum(info["reward_terms"].values()))


def test_reward_config_weights_apply() -> None:
    env = AccompanimentEnv([make_piece()], EnvConfig(transpose=False, reward=RewardConfig(consonance=3.0)))
    env.reset(seed=0)
    _, _, _, _, info = env.step(onset(48))  # C3 under C5: consonant
    assert info["reward_terms"]["consonance"] == 3.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        AccompanimentEnv([], SMALL)
    env = AccompanimentEnv([make_piece()], SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(130)
    with pytest.raises(ValueError):
        EnvConfig(mode="later")  # type: ignore[arg-type]
