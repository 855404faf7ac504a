"""Live benchmarks (the same sections as `liveagent bench`): prints measured figures, saves JSON.

    .venv/bin/python benchmarks/bench_live.py                      # everything, ~2-3 minutes
    .venv/bin/python benchmarks/bench_live.py --only osc,flood --duration 300   # the 5-minute flood target

Decision latency p50/p99/p99.9; emission lateness measured by an independent receiver over OSC (monitor
off and on, and under a 1,000 msg/s OSC flood) and over JACK MIDI (when jackd is installed, on a private
dummy JACK server); ONNX against torch eager on the same policy (when torch is installed; measured by
``python -m liveagent.train.bench_torch`` in a child process, so this one never imports torch); cold start
and resident memory of `liveagent serve`; the most agents one process holds at 240 BPM in sixteenths with
zero misses.
No pass/fail: compare with the targets in the README.
"""

from __future__ import annotations

import argparse
import sys

from liveagent.live.commands import bench_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_live", description=__doc__.splitlines()[0])
    bench_cli.configure(parser)
    return bench_cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
