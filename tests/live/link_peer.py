"""An independent Ableton Link peer for the tests: its own process, aalink directly, none of liveagent.

Reads commands on stdin, one a line: ``tempo BPM``, ``start`` (plays from beat 0, ``preroll`` s ahead),
``stop``, ``quit``. Prints JSON lines on stdout: ``{"ready": ...}`` once Link is enabled, an ack per
command (``{"ack": ..., "t_ns": ...}``), and every ``--every`` seconds a sample of its session: the
perf_counter_ns time (the midpoint of the reads around ``link.beat``), its beat, tempo, transport and peers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
import threading
import time


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    from aalink import Link

    link = Link(args.bpm)
    link.quantum = args.quantum
    link.start_stop_sync_enabled = True
    link.enabled = True
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "quit")

    threading.Thread(target=read_stdin, daemon=True).start()
    emit({"ready": True, "tempo": link.tempo})
    was_playing = False
    while True:
        while not commands.empty():
            cmd = commands.get_nowait().split()
            if not cmd:
                continue
            if cmd[0] == "quit":
                link.enabled = False
                return
            if cmd[0] == "tempo":
                link.tempo = float(cmd[1])
            elif cmd[0] == "start":
                at = link.time + datetime.timedelta(seconds=args.preroll)
                link.set_is_playing_and_request_beat_at_time(True, at, 0.0)
            elif cmd[0] == "stop":
                link.playing = False
            emit({"ack": cmd[0], "t_ns": time.perf_counter_ns()})
        playing = bool(link.playing)
        if playing and not was_playing:
            link.request_beat_at_start_playing_time(0.0)  # a start by another peer: beat 0 at its time
        was_playing = playing
        t0 = time.perf_counter_ns()
        beat = link.beat
        t1 = time.perf_counter_ns()
        emit(
            {
                "t_ns": (t0 + t1) // 2,
                "read_ns": t1 - t0,
                "beat": beat,
                "tempo": link.tempo,
                "playing": playing,
                "peers": link.num_peers,
            }
        )
        await asyncio.sleep(args.every)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bpm", type=float, default=120.0)
    ap.add_argument("--quantum", type=float, default=4.0)
    ap.add_argument("--every", type=float, default=0.01)
    ap.add_argument("--preroll", type=float, default=0.2)
    asyncio.run(main(ap.parse_args()))
