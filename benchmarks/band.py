"""The band's live figures beside the solo default (`liveagent bench --band satb`): prints them, saves JSON.

    .venv/bin/python benchmarks/band.py                        # everything, ~4-6 minutes
    .venv/bin/python benchmarks/band.py --only osc --duration 60

A whole band step (bass, tenor, alto in order) against one solo decision; emission lateness of a real
`serve --band satb` at an independent receiver on every voice's address, with the chord grace on and off,
beside the solo `serve`; the most bands (and solo engines) one process holds at 240 BPM in sixteenths with
zero misses, under a performer. No pass/fail: compare with the issue's target (emission p99 <= 0.5 ms).
"""

from __future__ import annotations

import argparse
import sys

from liveagent.live.commands import bench_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="band", description=__doc__.splitlines()[0])
    bench_cli.configure(parser)
    args = parser.parse_args(argv)
    args.band = args.band or "satb"
    return bench_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
