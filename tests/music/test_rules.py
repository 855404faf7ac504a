"""The rule-based bass on hand-made passages: in key, in range, below and consonant with the melody,
mostly stepwise, on the beats, silent when the performer is."""

from __future__ import annotations

import numpy as np
import pytest

from liveagent.music.features import ObservationBuffers, build_observation
from liveagent.music.rules import RulesAccompanist, estimate_keys
from liveagent.music.sampling import Sampler, range_mask
from liveagent.music.theory import Key, estimate_key, is_consonant
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, VOCAB_SIZE, Note, notes_to_tokens, sounding_pitches

W = 32
# Ode to Joy in C major, quarter notes (4 steps), a half note last: E E F G | G F E D | C C D E | E D D -
ODE = [76, 76, 77, 79, 79, 77, 76, 74, 72, 72, 74, 76, 76, 74, 74]
# A harmonic-minor tune: A C B A | E G# A -
A_MINOR = [69, 72, 71, 69, 76, 68, 69]


def melody(pitches: list[int], beat: int = 4, lead_in: int = 0, tail: int = 16) -> np.ndarray:
    notes = [Note(lead_in + i * beat, beat, p) for i, p in enumerate(pitches)]
    notes[-1] = Note(notes[-1].start, 2 * beat, notes[-1].pitch)
    return notes_to_tokens(notes, lead_in + (len(pitches) + 1) * beat + tail)


def play(policy: RulesAccompanist, performer: np.ndarray) -> np.ndarray:
    """Run the policy online (greedy, range-masked) as the environment does."""
    perf = np.atleast_2d(performer)
    b, t_max = perf.shape
    agent = np.zeros_like(perf)
    obs = ObservationBuffers.allocate(b, W)
    sampler = Sampler()
    mask = range_mask(policy.pitch_min, policy.pitch_max)
    for t in range(t_max):
        build_observation(perf, agent, np.full(b, t), window=W, steps_per_bar=16, mode=policy.mode, out=obs)
        logits = policy(obs)
        assert logits.shape == (b, VOCAB_SIZE) and logits.dtype == np.float32 and np.isfinite(logits).all()
        agent[:, t] = sampler.sample(logits, mask)
    return agent if performer.ndim == 2 else agent[0]


def onsets(line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    at = np.nonzero(line >= ONSET_BASE)[0]
    return at, line[at] - ONSET_BASE


@pytest.mark.parametrize("mode", ["anticipate", "react"])
def test_bass_under_a_c_major_melody(mode: str) -> None:
    perf = melody(ODE)
    bass = play(RulesAccompanist(mode=mode), perf)  # type: ignore[arg-type]
    at, pitches = onsets(bass)
    assert len(at) >= 8
    # In key once a bar of melody has been heard (before that, E or E-F alone could be E major or A minor).
    settled = pitches[at >= 16] if mode == "anticipate" else pitches
    assert len(settled) >= 6
    assert set((settled % 12).tolist()) <= set(Key(0, "major").pitch_classes)
    assert pitches.min() >= 36 and pitches.max() <= 62
    assert (at % 4 == 0).all()  # new notes only on beats
    mel = sounding_pitches(perf)
    sounding = mel[at] >= 0
    assert (pitches[sounding] < mel[at][sounding]).all()  # below the melody
    consonant = is_consonant(mel[at][sounding], pitches[sounding]).mean()
    # React hears the note it harmonizes; anticipate must guess it and is allowed some misses.
    assert consonant == 1.0 if mode == "react" else consonant >= 0.6
    leaps = np.abs(np.diff(pitches))
    assert np.mean(leaps <= 4) >= 0.6 and leaps.max() <= 12  # mostly steps and thirds, nothing wild


def test_a_minor_melody_gives_a_minor_bass() -> None:
    bass = play(RulesAccompanist(mode="react"), melody(A_MINOR))
    _, pitches = onsets(bass)
    assert set((pitches % 12).tolist()) <= set(Key(9, "minor").pitch_classes)
    assert pitches[0] % 12 == 9


def test_silent_before_and_after_the_performer() -> None:
    perf = melody(ODE[:8], lead_in=8, tail=24)
    bass = play(RulesAccompanist(), perf)
    first = int(np.argmax(perf >= ONSET_BASE))
    assert (bass[: first + 1] == REST).all()  # nothing heard yet: nothing played
    end = len(perf) - 24
    snd = sounding_pitches(bass)
    assert (snd[end + 8 :] < 0).all()  # the performer stopped: the bass stops within a beat or two


def test_long_melody_notes_never_hold_a_bass_note_past_a_bar() -> None:
    # Two-bar notes (a window of W=32 steps still holds their onset; a longer note would look like silence).
    perf = notes_to_tokens([Note(0, 32, 72), Note(32, 32, 76)], 64)
    bass = play(RulesAccompanist(mode="react"), perf)
    at, _ = onsets(bass)
    assert len(at) >= 4 and at[0] == 0
    lengths = np.diff(np.append(at, len(bass)))
    assert lengths.max() <= 16
    assert (bass[at[0] + 1 : at[1]] == HOLD).all()


def test_custom_range_and_batch_equals_rows() -> None:
    policy = RulesAccompanist(pitch_min=40, pitch_max=55)
    perf = np.stack([melody(ODE), np.roll(melody(A_MINOR, tail=48), 4)[: len(melody(ODE))]])
    both = play(policy, perf)
    for i in range(2):
        assert np.array_equal(both[i], play(policy, perf[i]))
    _, pitches = onsets(both.ravel())
    assert pitches.min() >= 40 and pitches.max() <= 55
    logits = policy(ObservationBuffers.allocate(3, W))
    assert logits.shape == (3, VOCAB_SIZE) and (np.argmax(logits, axis=1) == REST).all()  # silence -> REST
    with pytest.raises(ValueError):
        RulesAccompanist(pitch_min=60, pitch_max=50)
    with pytest.raises(ValueError):
        RulesAccompanist(mode="bogus")  # type: ignore[arg-type]


def test_no_parallel_perfect_intervals_in_react_mode() -> None:
    perf = melody(ODE)
    bass = play(RulesAccompanist(mode="react"), perf)
    at, pitches = onsets(bass)
    mel = sounding_pitches(perf)[at]
    ic = np.abs(mel - pitches) % 12
    perfect = (ic == 0) | (ic == 7)
    parallel = (
        perfect[1:] & perfect[:-1] & (ic[1:] == ic[:-1]) & (np.diff(pitches) != 0) & (np.diff(mel) != 0)
    )
    assert not parallel.any()


def test_vectorized_key_estimation_matches_theory() -> None:
    rng = np.random.default_rng(3)
    hists = rng.random((50, 12)) ** 3
    keys = estimate_keys(hists)
    for h, k in zip(hists, keys, strict=True):
        want = estimate_key(h)
        assert k == want.tonic + (12 if want.mode == "minor" else 0)
    assert estimate_keys(np.zeros((1, 12))).tolist() == [0]
