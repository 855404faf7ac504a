"""MIDI thru latency through a real JACK server: a keyboard peer -> MidiIO (thru) -> a synth peer.

    .venv/bin/python benchmarks/midi_thru_latency.py                 # periods 64 and 512, 300 notes each

A private dummy JACK server per run (``jackd -d dummy``); two rtmidi peers in this process. It compares the
thru thread of ``liveagent/live/io/midi_thru.py`` (the callback only enqueues; "midi-thru" sends, at
SCHED_FIFO when allowed) with the former design, the send on the input callback (JACK's process thread),
emulated by sending from ``MidiThru.forward``. Figures, never pass/fail: end to end (the keyboard's
``send_message`` to the synth's callback, both in this process, so JACK's period dominates) and the hand-off
(our callback's entry to the send done, ``MidiThru.latency_ns``). Python's switch interval is
serve's (0.5 ms).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

from liveagent.live.io.jack import dummy_jack_server
from liveagent.live.io.midi import MidiConfig, MidiIO, close_rtmidi_port


def _rt(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(rtapi=rtmidi.API_UNIX_JACK, name=name)


def _inline(io: MidiIO) -> None:
    """The former design: thru sent on the input callback itself."""

    def forward(pitch: int, vel: int, t_ns: int, t_in: int) -> None:
        assert io.sink is not None
        io.counters.thru += 1
        io.sink.thru(pitch, vel)
        io.thru.latency_ns.append(time.perf_counter_ns() - t_in)

    io.thru.forward = forward  # type: ignore[method-assign]


def run(period: int, inline: bool, notes: int, gap_s: float) -> dict[str, float]:
    with dummy_jack_server(f"thru-lat-{os.getpid()}-{period}-{int(inline)}", period=period) as jack:
        os.environ.update(jack.env())
        io = MidiIO(lambda e: None, MidiConfig(api="jack", virtual=True, client_name="thru-lat", thru=True))
        if inline:
            _inline(io)
        kbd, synth = _rt("out", "thru-lat-kbd"), _rt("in", "thru-lat-synth")
        kbd.open_virtual_port("out")
        synth.open_virtual_port("in")
        heard: dict[tuple[int, int], int] = {}
        synth.set_callback(lambda m, d=None: heard.setdefault((m[0][1], m[0][2]), time.perf_counter_ns()))
        try:
            jack.wait_port("thru-lat:in")
            jack.connect("thru-lat-kbd:out", "thru-lat:in")
            jack.connect("thru-lat-out:out", "thru-lat-synth:in")
            time.sleep(0.3)
            sent: dict[tuple[int, int], int] = {}
            for i in range(notes):
                key = (30 + i % 60, 1 + i // 60)  # every message distinct
                sent[key] = time.perf_counter_ns()
                kbd.send_message([0x90, *key])
                time.sleep(gap_s)
            time.sleep(0.3)
            e2e = np.array([heard[k] - t for k, t in sent.items() if k in heard], dtype=np.float64) / 1e6
            hand = np.array(io.thru.latency_ns, dtype=np.float64) / 1e3
            return {
                "heard": float(e2e.size),
                "e2e_p50_ms": float(np.percentile(e2e, 50)),
                "e2e_p99_ms": float(np.percentile(e2e, 99)),
                "e2e_max_ms": float(e2e.max()),
                "handoff_p50_us": float(np.percentile(hand, 50)),
                "handoff_p99_us": float(np.percentile(hand, 99)),
                "handoff_max_us": float(hand.max()),
                "rt": float(io.thru.realtime),
            }
        finally:
            io.close()
            close_rtmidi_port(kbd)
            close_rtmidi_port(synth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--periods", default="64,512", help="JACK periods in frames at 48 kHz")
    ap.add_argument("--notes", type=int, default=300)
    ap.add_argument("--gap-ms", type=float, default=13.0, help="between notes (not a multiple of a period)")
    args = ap.parse_args()
    sys.setswitchinterval(0.0005)  # serve's
    for period in (int(p) for p in args.periods.split(",")):
        for inline in (True, False):
            r = run(period, inline, args.notes, args.gap_ms / 1e3)
            what = "callback (former)" if inline else f"thru thread{' (fifo)' if r['rt'] else ''}"
            sys.stdout.write(
                f"period {period:4d} ({period / 48:5.2f} ms) {what:18s} n={r['heard']:.0f}  end to end ms "
                f"p50 {r['e2e_p50_ms']:.2f} p99 {r['e2e_p99_ms']:.2f} max {r['e2e_max_ms']:.2f}  hand-off us "
                f"p50 {r['handoff_p50_us']:.0f} p99 {r['handoff_p99_us']:.0f} max {r['handoff_max_us']:.0f}\n"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
