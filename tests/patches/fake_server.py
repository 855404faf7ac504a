"""A stand-in for ``liveagent serve`` used only while developing the Pd harness (never as the test's proof).

It speaks the fixed OSC address space: plays one note a step (a third below the last performer pitch) and
sends ``/liveagent/out/beat bar beat`` on every beat, from /liveagent/start to /liveagent/stop.
Run: ``python tests/patches/fake_server.py --osc-port 9000 --osc-out 127.0.0.1:9001``.
"""

from __future__ import annotations

import argparse
import threading
import time

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--osc-port", type=int, default=9000)
    p.add_argument("--osc-out", default="127.0.0.1:9001")
    p.add_argument("--bpm", type=float, default=120.0)
    a = p.parse_args()
    host, port = a.osc_out.rsplit(":", 1)
    out = SimpleUDPClient(host, int(port))
    state = {"bpm": a.bpm, "last": 60, "playing": False, "sounding": None}
    lock = threading.Lock()

    def play() -> None:
        step = 0
        t0 = time.perf_counter()
        while True:
            with lock:
                if not state["playing"]:
                    if state["sounding"] is not None:
                        out.send_message("/liveagent/out/note", [state["sounding"], 0])
                        state["sounding"] = None
                    return
                dt = 60.0 / state["bpm"] / 4
            due = t0 + step * dt
            while time.perf_counter() < due:
                time.sleep(0.0005)
            with lock:
                if step % 4 == 0:
                    out.send_message("/liveagent/out/beat", [step // 16, (step // 4) % 4])
                if state["sounding"] is not None:
                    out.send_message("/liveagent/out/note", [state["sounding"], 0])
                if step % 2 == 0:
                    state["sounding"] = int(state["last"]) - 4
                    out.send_message("/liveagent/out/note", [state["sounding"], 90])
                else:
                    state["sounding"] = None
            step += 1

    def on_start(addr: str, *args: object) -> None:
        with lock:
            if state["playing"]:
                return
            state["playing"] = True
        threading.Thread(target=play, daemon=True).start()

    def on_stop(addr: str, *args: object) -> None:
        with lock:
            state["playing"] = False

    def on_note(addr: str, pitch: int, vel: int) -> None:
        if vel > 0:
            state["last"] = pitch

    def on_tempo(addr: str, bpm: float) -> None:
        state["bpm"] = float(bpm)

    d = Dispatcher()
    d.map("/liveagent/start", on_start)
    d.map("/liveagent/stop", on_stop)
    d.map("/liveagent/note", on_note)
    d.map("/liveagent/tempo", on_tempo)
    d.map("/liveagent/status", lambda addr, *a: out.send_message("/liveagent/status", ["bpm", state["bpm"]]))
    d.set_default_handler(lambda addr, *args: None)
    server = ThreadingOSCUDPServer(("127.0.0.1", a.osc_port), d)
    print(f"ready osc-in 127.0.0.1:{a.osc_port} osc-out {a.osc_out}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
