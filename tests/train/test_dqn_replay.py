"""The replay ring buffer and the epsilon schedule against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from liveagent.music.features import ObservationBuffers
from liveagent.train.rl_common import ReplayBuffer, linear_schedule


def _obs(base: int, n: int = 2, w: int = 3) -> ObservationBuffers:
    o = ObservationBuffers.allocate(n, w)
    o.performer[:] = base + np.arange(n)[:, None]
    o.agent[:] = base + 10 + np.arange(n)[:, None]
    o.position[:] = np.arange(n) + base % 16
    return o


def test_replay_add_wraps_and_keeps_latest() -> None:
    rb = ReplayBuffer(capacity=3, window=3)
    assert len(rb) == 0
    rb.add(_obs(2), [5, 6], [0.5, -1.0], _obs(3), [False, True])
    assert (len(rb), rb.pos) == (2, 2)
    rb.add(_obs(20), [7, 8], [1.5, 2.5], _obs(21), [False, False])
    # Capacity 3: the 4th transition overwrote slot 0.
    assert (len(rb), rb.pos) == (3, 1)
    assert rb.action.tolist() == [8, 6, 7]
    assert rb.reward.tolist() == [2.5, -1.0, 1.5]
    assert rb.done.tolist() == [0.0, 1.0, 0.0]
    assert rb.performer[0].tolist() == [21, 21, 21]  # row 1 of _obs(20)
    assert rb.next_agent[1].tolist() == [14, 14, 14]  # row 1 of _obs(3)
    assert rb.next_mask.all()


def test_replay_keep_mask_and_next_mask() -> None:
    rb = ReplayBuffer(capacity=10, window=3, n_actions=4)
    mask = np.array([[True, False, True, False], [False, True, False, True]])
    rb.add(_obs(2), [1, 2], [0.0, 1.0], _obs(3), [False, False], next_mask=mask, keep=np.array([False, True]))
    assert len(rb) == 1
    assert rb.action[0] == 2
    assert rb.next_mask[0].tolist() == [False, True, False, True]


def test_replay_sample_types_and_values() -> None:
    rb = ReplayBuffer(capacity=8, window=3)
    rb.add(_obs(100), [129, 0], [0.25, 0.75], _obs(101), [True, False])
    b = rb.sample(64, np.random.default_rng(0))
    assert b["performer"].dtype.is_floating_point is False and b["performer"].shape == (64, 3)
    assert str(b["performer"].dtype) == "torch.int64"
    assert set(b["action"].tolist()) == {129, 0}
    # Each sampled row is a consistent transition: action 129 <-> reward 0.25 <-> done.
    sel = b["action"] == 129
    assert set(b["reward"][sel].tolist()) == {0.25}
    assert set(b["done"][sel].tolist()) == {1.0}
    assert set(b["performer"][sel][:, 0].tolist()) == {100}
    with pytest.raises(ValueError):
        ReplayBuffer(4, 3).sample(1, np.random.default_rng(0))


def test_linear_schedule() -> None:
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 1000) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 0, 5) == 0.1
