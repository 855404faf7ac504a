"""`liveagent` command line: one dispatcher, each subcommand in the module that owns it.

Subcommand modules are imported lazily: each exposes ``configure(parser)`` and ``run(args) -> int``,
and must not import heavy dependencies (torch, music21) at module level, so `liveagent serve` starts
fast and never loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from liveagent import __version__

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": (
        "liveagent.live.commands.serve",
        "run the live accompanist (MIDI + OSC) until SIGINT/SIGTERM",
    ),
    "demo": (
        "liveagent.live.commands.demo",
        "the main job end to end: a melody into a real server, a duet out",
    ),
    "render": ("liveagent.live.commands.render", "render a duet or a recorded session to a WAV (FluidSynth)"),
    "eval": ("liveagent.env.eval_cli", "evaluate policies online over a corpus split and print the table"),
    "train": ("liveagent.train.cli", "train a policy from a recipe (TOML)"),
    "export": ("liveagent.train.export_cli", "export a checkpoint to a contract-v1 ONNX policy"),
    "bench": ("liveagent.live.commands.bench_cli", "latency, jitter and throughput benchmarks"),
    "ports": ("liveagent.live.commands.ports", "list MIDI input and output ports"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liveagent", description="liveagent: a real-time live accompanist")
    parser.add_argument("--version", action="version", version=f"liveagent {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported: the others are never loaded.
        if only == name:
            module = importlib.import_module(module_name)
            module.configure(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if a in COMMANDS), None)
    parser = build_parser(only=chosen)
    args = parser.parse_args(args_list)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run = getattr(args, "_run", None)
    if run is None:
        parser.error(f"command {args.command!r} is not available")
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        return 130
