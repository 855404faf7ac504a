"""The band addition of the contract: the spec, the builder the training data uses, and the live stream
the engine uses give the same arrays (training and playing agree)."""

from __future__ import annotations

import numpy as np
import pytest

from liveagent.music.band import BandBuffers, BandSpec, BandStream, build_band_observation
from liveagent.music.features import Mode
from liveagent.music.tokens import HOLD, REST, onset

SPEC = BandSpec.named("satb", ((55, 74), (48, 69), (36, 62)))
W = 6


def test_satb_is_decided_bass_first_and_round_trips_as_metadata() -> None:
    assert SPEC.voices == ("alto", "tenor", "bass") and SPEC.order == ("bass", "tenor", "alto")
    assert SPEC.order_index == (2, 1, 0)
    d = SPEC.decided_before()
    # [v, j]: voice j is decided before voice v within a step.
    assert d.tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    assert BandSpec.from_json(SPEC.to_json()) == SPEC
    with pytest.raises(ValueError, match="band spec"):
        BandSpec.from_json('{"voices": ["a"]}')
    with pytest.raises(ValueError, match="permutation"):
        BandSpec(("a", "b"), ("a", "c"), ((0, 1), (0, 1)))


def lines_for(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = np.array([REST, HOLD, HOLD, onset(60), onset(64), onset(67)])
    return rng.choice(pool, n), rng.choice(pool, (3, n))


def test_decided_voices_are_seen_at_the_step_the_others_up_to_the_step_before() -> None:
    perf, lines = lines_for(20, 0)
    t = 10
    out = BandBuffers.allocate_band(1, W, 3)
    tenor = 1
    build_band_observation(perf, lines, tenor, t, spec=SPEC, window=W, steps_per_bar=16, out=out)
    assert out.performer[0].tolist() == perf[t - W + 1 : t + 1].tolist()  # follow: hears the soprano's t
    assert out.agent[0].tolist() == lines[tenor, t - W : t].tolist()  # its own past
    assert out.others[0, 2].tolist() == lines[2, t - W + 1 : t + 1].tolist()  # the bass, decided first
    assert out.others[0, 0].tolist() == lines[0, t - W : t].tolist()  # the alto, decided after it
    assert out.others[0, 1].tolist() == out.agent[0].tolist()
    assert out.voice.tolist() == [tenor] and out.position.tolist() == [t % 16]
    # Before the start: REST.
    build_band_observation(perf, lines, 0, 1, spec=SPEC, window=W, steps_per_bar=16, out=out)
    assert out.others[0, 2].tolist() == [REST] * (W - 2) + lines[2, :2].tolist()


@pytest.mark.parametrize("mode", ["follow", "anticipate"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_live_stream_gives_the_training_builder_arrays(seed: int, mode: Mode) -> None:
    n = 40
    perf, lines = lines_for(n, seed)
    stream = BandStream(SPEC, window=W, steps_per_bar=16, mode=mode)
    live = BandBuffers.allocate_band(1, W, 3)
    ref = BandBuffers.allocate_band(1, W, 3)
    pending = np.zeros(3, dtype=np.int64)
    for t in range(n):
        if mode == "follow":  # heard before the decision; anticipate timing hears it after
            stream.push_performer(int(perf[t]))
        for v in SPEC.order_index:
            stream.fill(live, t, v, pending)
            build_band_observation(
                perf, lines, v, t, spec=SPEC, window=W, steps_per_bar=16, mode=mode, out=ref
            )
            for name in ("performer", "agent", "position", "others", "voice"):
                assert getattr(live, name).tolist() == getattr(ref, name).tolist(), (t, v, name)
            pending[v] = lines[v, t]  # the voice's decision, heard by the voices after it
        stream.push_agents(lines[:, t])
        if mode == "anticipate":
            stream.push_performer(int(perf[t]))


def test_an_anticipating_band_never_sees_the_soprano_at_the_step_it_decides() -> None:
    perf, lines = lines_for(20, 4)
    t = 10
    out = BandBuffers.allocate_band(1, W, 3)
    build_band_observation(
        perf, lines, 1, t, spec=SPEC, window=W, steps_per_bar=16, mode="anticipate", out=out
    )
    assert out.performer[0].tolist() == perf[t - W : t].tolist()  # up to t-1: step t is not heard yet
    assert out.others[0, 2].tolist() == lines[2, t - W + 1 : t + 1].tolist()  # the bass, decided first
