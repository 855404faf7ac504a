"""`liveagent bench`: decision latency, emission lateness at an independent receiver (OSC, JACK MIDI),
cold start, resident memory, ONNX vs torch eager, and the most agents per process at 240 BPM.

Numbers are printed as measured (and saved as JSON with ``--json``); nothing here passes or fails.
torch is imported only by the ``torch`` section's subprocess (``python -m liveagent.train.bench_torch``),
never in this process or in `serve`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default="default", help="policy under test (default falls back to rules)")
    parser.add_argument("--bpm", type=float, default=240.0, help="tempo of the timing runs (16ths)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per emission-lateness run")
    parser.add_argument("--flood-rate", type=float, default=1000.0, help="OSC flood msg/s (0 = skip)")
    parser.add_argument("--decisions", type=int, default=5000, help="policy calls for decision latency")
    parser.add_argument("--cold-starts", type=int, default=3, help="serve launches for cold start")
    parser.add_argument("--agents-seconds", type=float, default=6.0, help="seconds per max-agents trial")
    parser.add_argument("--max-agents", type=int, default=256, help="largest agent count tried")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections: decision,cold,osc,floor,monitor,flood,jack,torch,agents (none: all)",
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra serve flag for the timing runs, repeatable (e.g. --serve-arg=--follow-chord-ms=0)",
    )
    parser.add_argument(
        "--band",
        default="",
        metavar="BAND",
        help="measure a band (satb) beside --policy: decision, osc (per voice, chord grace on/off), agents",
    )
    parser.add_argument("--band-policy", default="band", help="the band policy of --band (default: band)")
    parser.add_argument("--no-jack", action="store_true", help="skip the JACK MIDI run")
    parser.add_argument("--no-torch", action="store_true", help="skip ONNX vs torch")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the bench itself)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")


def _us(d: Any) -> str:
    if not isinstance(d, dict) or not d.get("n"):
        return "- (nothing received)"
    return f"p50 {d.get('p50', 0):.0f} us, p99 {d.get('p99', 0):.0f} us, p99.9 {d.get('p99.9', 0):.0f} us"


def _n(x: Any) -> str:
    return f"{x:.0f}" if isinstance(x, int | float) else "-"


def _floor_line(res: dict[str, Any]) -> str:
    rt = "SCHED_FIFO" if res.get("realtime") else "normal priority"
    gap = res.get("spin_gap_us") or {}
    return (
        f"floor     receiver lateness {_us(res.get('osc_lateness_us'))} (a bare Python sender, {rt}, "
        f"{res.get('sent')} datagrams); its spin's longest gap p50 {_n(gap.get('p50'))} us, "
        f"p99 {_n(gap.get('p99'))} us"
    )


def _band_line(name: str, res: dict[str, Any]) -> str:
    """A section of ``bench --band``: the band's figures and the solo policy's, one line each."""
    us = _us
    if "error" in res:
        return f"{name:9s} {res['error']}"
    if name == "floor":
        return _floor_line(res)
    if name == "decision":
        b, s = res["band"], res["solo"]
        voices = ", ".join(f"{v} p99 {d['p99']:.0f} us" for v, d in b["per_voice_us"].items())
        return (
            f"decision  band [{b['policy']}] step {us(b)} ({voices}; onsets {b['onsets_per_voice']})\n"
            f"{'':9s} solo [{s['policy']}] {us(s)}; band/solo p50 {res['band_over_solo_p50']}x"
        )
    if name == "osc":
        lines = []
        for run in ("band", "band_chord0", "solo", "solo_chord0"):
            r = res.get(run)
            if not isinstance(r, dict):
                continue
            ans = r.get("answer_us") or {}
            s = f"{run:11s} v1 address {us(r.get('osc_lateness_us'))}"
            s += f"; misses {r.get('misses')}/{r.get('steps')}"
            if "band_lateness_us" in r:
                pooled = r["band_lateness_us"]
                s += f"\n{'':11s} all voices {us(pooled)}, max {pooled['max']:.0f} us"
                for v, d in r["voices_lateness_us"].items():
                    s += f"\n{'':11s} {v:10s} {us(d)}, max {d['max']:.0f} us"
            s += (
                f"\n{'':11s} answer p50 {_n(ans.get('p50'))} us, p95 {_n(ans.get('p95'))} us; serve decision "
                f"p99 {_n(r.get('decision_p99_us'))} us; notes out {r.get('notes_out')}"
            )
            lines.append(s)
        return "osc\n" + "\n".join(lines)
    if name == "agents":
        return "\n".join(
            f"agents    {who}: {r['max_agents_zero_misses']} in one process at {r['bpm']:g} BPM (16ths), "
            "zero misses; agents:misses:notes "
            + ", ".join(f"{t['agents']}:{t['misses']}:{t.get('notes_out')}" for t in r.get("trials", []))
            for who, r in res.items()
            if isinstance(r, dict) and "max_agents_zero_misses" in r
        )
    return f"{name} {json.dumps(res)}"


def _line(name: str, res: dict[str, Any]) -> str:
    us = _us
    if "error" in res or "skipped" in res:
        return f"{name:9s} {res.get('error') or 'skipped: ' + str(res.get('skipped'))}"
    if name == "floor":
        return _floor_line(res)
    if name == "decision":
        rt = "SCHED_FIFO" if res.get("realtime") else "normal priority"
        return f"decision  [{res['policy']}] {us(res)} (n={res['n']}, {rt})"
    if name == "cold":
        c = res["cold_start_s"]
        return (
            f"cold      serve ready in {c['median']:.2f} s median ({c['max']:.2f} max, {c['runs']} runs); "
            f"RSS {res['rss_mb']:.0f} MB; torch mapped: {res['torch_mapped']}"
        )
    if name in ("osc", "monitor", "flood", "jack"):
        label = {"osc": "osc", "monitor": "osc+mon", "flood": "osc+flood", "jack": "jack"}[name]
        s = f"{label:9s} receiver lateness {us(res.get('osc_lateness_us'))}"
        s += f"; misses {res.get('misses')}/{res.get('steps')}"
        ans = res.get("answer_us")
        if isinstance(ans, dict) and res.get("answered"):
            s += (
                f"\n{'':9s} follow: answer p50 {ans.get('p50', 0):.0f} us, p95 {ans.get('p95', 0):.0f} us, "
                f"p99 {ans.get('p99', 0):.0f} us over {res.get('answered')} onsets "
                f"({res.get('answered_pct')} % answered); window "
                f"{res.get('follow_window_ms')} ms; late amended {res.get('late_amended')}"
            )
        if name == "flood":
            s += f"; flood {res.get('flood_rate_achieved')} msg/s, dropped {res.get('osc_flood_dropped')}"
        if name == "jack":
            s += f"\n{'':9s} JACK MIDI lateness {us(res.get('midi_lateness_us'))}"
            s += f" (period {res.get('jack_period_ms')} ms)"
        return s
    if name == "torch":
        return (
            f"torch     onnxruntime p50 {res['onnx_us']['p50']:.0f} us vs torch eager p50 "
            f"{res['torch_eager_us']['p50']:.0f} us: ONNX {res['speedup_p50']}x faster "
            f"(p99 {res['speedup_p99']}x); {res.get('model')} from {res.get('weights')}"
        )
    if name == "agents":
        return (
            f"agents    {res['max_agents_zero_misses']} agents in one process at {res['bpm']:g} BPM (16ths), "
            f"zero misses (lead {res.get('lead_ms')} ms); agents:misses "
            + ", ".join(f"{t['agents']}:{t['misses']}" for t in res.get("trials", []))
        )
    return f"{name} {json.dumps(res)}"


def run(args: argparse.Namespace) -> int:
    from liveagent.live.commands.bench import BenchConfig, run_all, save

    cfg = BenchConfig(
        policy=args.policy,
        bpm=args.bpm,
        duration_s=args.duration,
        flood_rate=args.flood_rate,
        decisions=args.decisions,
        cold_starts=args.cold_starts,
        agents_s=args.agents_seconds,
        max_agents=args.max_agents,
        jack=not args.no_jack,
        torch=not args.no_torch,
        serve_args=tuple(args.serve_arg),
        only=tuple(s.strip() for s in args.only.split(",") if s.strip()),
        band=args.band,
        band_policy=args.band_policy,
    )
    if args.quick:
        cfg.duration_s, cfg.decisions, cfg.cold_starts = 3.0, 500, 1
        cfg.agents_s, cfg.max_agents = 2.0, 4
    print(f"liveagent bench: policy {cfg.policy}, {cfg.bpm:g} BPM in 16ths, {cfg.duration_s:g} s per run")
    if cfg.band:
        print(f"band {cfg.band} (policy {cfg.band_policy}) beside the solo policy")
    sections = None
    if cfg.band:
        from liveagent.live.commands.bench_band import BAND_SECTIONS

        sections = BAND_SECTIONS
    line = _band_line if cfg.band else _line
    results = run_all(cfg, lambda name, res: print(line(name, res), flush=True), sections)
    if args.json:
        save(results, Path(args.json))
        print(f"results: {args.json}")
    return 0
