"""`liveagent ports`: the MIDI backend and its input/output ports (what --midi-in / --midi-out accept)."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--midi-api",
        default="auto",
        help="rtmidi API: auto (MIDO_BACKEND, else ALSA then JACK), jack, alsa",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a listing")


def run(args: argparse.Namespace) -> int:
    from liveagent.live.io.midi import MidiUnavailableError, list_ports

    try:
        backend, ins, outs = list_ports(args.midi_api)
    except MidiUnavailableError as e:
        if args.json:
            print(json.dumps({"backend": None, "inputs": [], "outputs": [], "error": str(e)}))
        else:
            print(f"no MIDI backend available: {e}")
            print("OSC needs no MIDI backend: `liveagent serve` still listens on OSC (127.0.0.1:9000).")
        return 1
    if args.json:
        print(json.dumps({"backend": backend, "inputs": ins, "outputs": outs}))
        return 0
    print(f"MIDI backend: {backend}")
    print("inputs (--midi-in):")
    for p in ins or ["(none)"]:
        print(f"  {p}")
    print("outputs (--midi-out):")
    for p in outs or ["(none)"]:
        print(f"  {p}")
    return 0
