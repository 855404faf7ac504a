"""DeviceClockMapper: rtmidi delta times mapped onto perf_counter_ns, free of the Python callback's delay."""

from __future__ import annotations

import numpy as np
import pytest

from liveagent.live.io.device_clock import DeviceClockMapper

MS = 1_000_000


def _loaded_arrivals(true: np.ndarray, seed: int) -> np.ndarray:
    """When a loaded Python callback sees each event: random delays up to 10 ms (exponential, mean 2 ms:
    measured with a GIL-hogging thread, p50 1.5 ms, p99 8 ms), a few 30 ms stalls (the events held back
    arrive together at the stall's end), never out of order."""
    rng = np.random.default_rng(seed)
    arrival = true + np.minimum(rng.exponential(2 * MS, true.size), 10 * MS)
    for start in rng.choice(true.size - 10, size=5, replace=False):
        end = true[start] + 30 * MS
        held = (true >= true[start]) & (true < end)
        arrival[held] = np.maximum(arrival[held], end)
    return np.maximum.accumulate(arrival)


def _map(true_dev: np.ndarray, arrival: np.ndarray, mapper: DeviceClockMapper) -> np.ndarray:
    deltas = np.diff(true_dev, prepend=true_dev[0]) / 1e9  # what rtmidi hands the callback (s)
    return np.array([mapper.map(float(d), int(a)) for d, a in zip(deltas, arrival, strict=True)])


@pytest.mark.parametrize("seed", range(4))
def test_mapped_times_are_within_a_fraction_of_a_ms_of_the_truth(seed: int) -> None:
    true = 5_000 * MS + np.round(np.arange(600) * 60e9 / (150 * 24))  # 10 s of 150 BPM ticks (whole ns)
    arrival = _loaded_arrivals(true, seed)
    mapper = DeviceClockMapper()
    mapped = _map(true - true[0], arrival, mapper)  # the device clock starts at 0: another origin
    err = mapped - true
    settled = err[30:]  # a clean message must have arrived once (here: within the first 30 ticks)
    assert np.abs(settled).max() < 0.2 * MS
    assert np.abs(arrival - true)[30:].max() > 25 * MS  # the raw stamps were far off
    assert (mapped <= arrival).all() and (np.diff(mapped) >= 0).all()


@pytest.mark.parametrize("ppm", [100.0, -100.0])
def test_drift_between_device_and_host_clock_is_followed(ppm: float) -> None:
    true = 1_000 * MS + np.round(np.arange(3_000) * 60e9 / (150 * 24))  # 50 s
    device = np.round((true - true[0]) * (1 + ppm * 1e-6))
    arrival = _loaded_arrivals(true, 7)
    mapped = _map(device, arrival, DeviceClockMapper())
    err = (mapped - true)[30:]
    assert np.abs(err).max() < 0.25 * MS  # at most drift x two buckets (2 s) of staleness
    # without following it, 100 ppm over 50 s would be 5 ms off at the end
    assert abs(float(np.median(err[-300:]))) < 0.2 * MS


def test_a_jump_of_the_device_clock_heals() -> None:
    """A lost interval (a message dropped after rtmidi stamped it, a backend restart) moves the offset for
    good: the estimate restarts from the first message that shows it, without waiting for the window."""
    true = np.round(np.arange(400) * 20 * MS).astype(np.float64)
    true[200:] += 2_000 * MS  # two seconds of silence, of which the deltas only cover 0.6 s
    deltas = np.diff(true, prepend=true[0]) / 1e9
    deltas[200] -= 1.4
    arrival = true + 1 * MS
    mapper = DeviceClockMapper(bucket_ns=10_000 * MS)  # a window the silence does not clear
    mapped = np.array([mapper.map(float(d), int(a)) for d, a in zip(deltas, arrival, strict=True)])
    assert mapper.resets == 1
    assert np.abs(mapped - true).max() <= 1 * MS


def test_sparse_messages_and_garbage_deltas() -> None:
    mapper = DeviceClockMapper(bucket_ns=1_000 * MS)
    assert mapper.map(0.0, 10 * MS) == 10 * MS  # the first message defines the origin
    assert mapper.map(5.0, 5_010 * MS + 3 * MS) == 5_010 * MS + 3 * MS  # window expired: its own delay
    assert mapper.map(float("nan"), 5_014 * MS) == 5_013 * MS  # no delta: the same device time
    assert mapper.map(-1.0, 5_015 * MS) == 5_013 * MS  # a negative delta never moves time back
    with pytest.raises(ValueError):
        DeviceClockMapper(bucket_ns=0)
