"""The observation builder: the streaming (live) and batch (env) builders agree, and the window is right."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveagent.music.features import ObservationBuffers, StreamingObservation, build_observation
from liveagent.music.tokens import REST, VOCAB_SIZE


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 40),
    st.integers(1, 9),
    st.sampled_from(["anticipate", "react"]),
)
def test_streaming_equals_batch(seed: int, n_steps: int, window: int, mode: str) -> None:
    rng = np.random.default_rng(seed)
    perf = rng.integers(0, VOCAB_SIZE, n_steps)
    agent = rng.integers(0, VOCAB_SIZE, n_steps)
    stream = StreamingObservation(window=window, steps_per_bar=16, mode=mode)  # type: ignore[arg-type]
    live = ObservationBuffers.allocate(1, window)
    batch = ObservationBuffers.allocate(1, window)
    for t in range(n_steps):
        if mode == "react":
            stream.push_performer(int(perf[t]))
        stream.fill(live, t)
        build_observation(perf, agent, t, window=window, steps_per_bar=16, mode=mode, out=batch)  # type: ignore[arg-type]
        for name in ("performer", "agent", "position"):
            assert np.array_equal(getattr(live, name), getattr(batch, name)), (t, name)
        if mode == "anticipate":
            stream.push_performer(int(perf[t]))
        stream.push_agent(int(agent[t]))


def test_window_contents_by_hand() -> None:
    perf = np.arange(10, 20)
    agent = np.arange(30, 40)
    out = ObservationBuffers.allocate(1, 4)
    build_observation(perf, agent, 2, window=4, steps_per_bar=16, out=out)
    assert out.performer[0].tolist() == [REST, REST, 10, 11]  # steps t-4 .. t-1, before the start = REST
    assert out.agent[0].tolist() == [REST, REST, 30, 31]
    build_observation(perf, agent, 2, window=4, steps_per_bar=16, mode="react", out=out)
    assert out.performer[0].tolist() == [REST, 10, 11, 12]  # react sees step t
    assert out.agent[0].tolist() == [REST, REST, 30, 31]  # never its own step t
    build_observation(perf, agent, 9, window=4, steps_per_bar=4, out=out)
    assert out.position.tolist() == [1]


def test_batched_steps_differ_per_row() -> None:
    perf = np.tile(np.arange(2, 12), (3, 1))
    out = ObservationBuffers.allocate(3, 2)
    build_observation(perf, perf, np.array([0, 1, 5]), window=2, steps_per_bar=4, out=out)
    assert out.performer.tolist() == [[REST, REST], [REST, 2], [5, 6]]
    assert out.position.tolist() == [0, 1, 1]
    feed = out.as_feed()
    assert feed["performer"] is out.performer and set(feed) == {"performer", "agent", "position"}


def test_streaming_refuses_wrong_step_counts() -> None:
    s = StreamingObservation(window=4, steps_per_bar=16)
    out = ObservationBuffers.allocate(1, 4)
    with pytest.raises(RuntimeError):
        s.fill(out, 1)
    with pytest.raises(ValueError):
        StreamingObservation(window=4, steps_per_bar=16, mode="bogus")  # type: ignore[arg-type]
