"""Hostile /liveagent/style and /liveagent/mood arguments, built byte by byte, into a real `serve --policy
style` over real UDP: each is refused with a count (osc_errors at the door, input_errors on the engine),
the style the status reports is untouched, the server still answers and obeys, and SIGTERM is prompt."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review6.helpers import (
    assert_clean_exit,
    blob,
    bundle,
    f32,
    f64,
    i32,
    i64,
    osc_string,
    raw,
    raw_string,
    udp,
)

STYLE, MOOD = "/liveagent/style", "/liveagent/mood"

AT_THE_DOOR: dict[str, bytes] = {
    "style NaN": raw(STYLE, "ff", f32(math.nan, 0.0)),
    "style inf": raw(STYLE, "ff", f32(math.inf, 0.0)),
    "style -inf double": raw(STYLE, "dd", f64(0.0, -math.inf)),
    "style I tag (infinitum)": raw(STYLE, "fI", f32(0.0)),
    "style no args": raw(STYLE, ""),
    "style no type tags": osc_string(STYLE),
    "style 65 args over the 32 arg parse limit": raw(STYLE, "f" * 65, f32(*[0.0] * 65)),
    "style 100 args": raw(STYLE, "f" * 100, f32(*[0.1] * 100)),
    "style strings": raw(STYLE, "ss", osc_string("0.5") + osc_string("0.5")),
    "style blob": raw(STYLE, "bb", blob(b"\x3f\x00\x00\x00") + blob(b"")),
    "style T F": raw(STYLE, "TF"),
    "style N": raw(STYLE, "NN"),
    "style char": raw(STYLE, "cc", i32(49, 50)),
    "style midi tag": raw(STYLE, "mm", b"\x90\x3c\x64\x00" * 2),
    "style truncated double": raw(STYLE, "dd", f64(0.1) + b"\0\0\0\0"),
    "mood empty": raw(MOOD, "s", osc_string("")),
    "mood blank": raw(MOOD, "s", osc_string("   \t ")),
    "mood 10 kB": raw(MOOD, "s", osc_string("busy" * 2500)),
    "mood not UTF-8": raw(MOOD, "s", raw_string(b"b\xffsy")),
    "mood lone surrogate bytes": raw(MOOD, "s", raw_string(b"\xed\xa0\x80")),
    "mood int": raw(MOOD, "i", i32(1)),
    "mood float": raw(MOOD, "f", f32(1.0)),
    "mood two strings": raw(MOOD, "ss", osc_string("busy") + osc_string("calm")),
    "mood no args": raw(MOOD, ""),
    "mood blob": raw(MOOD, "b", blob(b"busy")),
    "mood NUL char": raw(MOOD, "c", i32(0)),
    "mood string without NUL": osc_string(MOOD) + osc_string(",s") + b"busy",
}
"""Context-free refusals: counted in osc_errors by the input thread; the engine never sees them."""

ON_THE_ENGINE: dict[str, bytes] = {
    "style -0.0 x3 (neither 2 nor 4)": raw(STYLE, "fff", f32(-0.0, -0.0, -0.0)),
    "style 1e308 doubles": raw(STYLE, "dd", f64(1e308, 1e308)),
    "style latent 1e308": raw(STYLE, "dddd", f64(1e308, 0.0, 0.0, 0.0)),
    "style pad just outside": raw(STYLE, "ff", f32(1.0000001, 0.0)),
    "style int64 extremes": raw(STYLE, "hh", i64(2**63 - 1, -(2**63))),
    "style 32 args": raw(STYLE, "f" * 32, f32(*[0.0] * 32)),
    "style 1 arg": raw(STYLE, "f", f32(0.0)),
    "mood unknown": raw(MOOD, "s", osc_string("furious")),
    "mood 64 chars": raw(MOOD, "s", osc_string("x" * 64)),
    "mood char tag lone surrogate": raw(MOOD, "c", i32(0xD800)),
    "mood char tag newline": raw(MOOD, "c", i32(10 + 65)),  # 'K'
    "mood control chars": raw(MOOD, "s", osc_string("calm\x1b[2J\x07")),
    "mood symbol tag S": raw(MOOD, "S", osc_string("angry")),
}
"""Well-formed for the door, wrong for the style policy: counted in input_errors by the engine."""

ACCEPTED: dict[str, tuple[bytes, str]] = {
    "style -0.0 pad": (raw(STYLE, "ff", f32(-0.0, -0.0)), "custom"),
    "style int pad": (raw(STYLE, "ii", i32(1, -1)), "custom"),
    "style int64 pad": (raw(STYLE, "hh", i64(0, 1)), "custom"),
    "style double latent": (raw(STYLE, "dddd", f64(10.0, -10.0, 0.0, 5e-324)), "custom"),
    "mood padded with spaces": (raw(MOOD, "s", osc_string("  busy ")), "busy"),
    "mood symbol tag": (raw(MOOD, "S", osc_string("calm")), "calm"),
}


def _st(sp: ServeProcess) -> dict[str, Any]:
    return sp.status()


@pytest.mark.timeout(180)
def test_hostile_style_and_mood_arguments_are_counted_never_applied() -> None:
    with ServeProcess("--policy", "style", "--no-record", "--rt-priority", "0", "--bpm", "240") as sp:
        s = udp()
        dest = ("127.0.0.1", sp.osc_port)
        base = _st(sp)
        assert base["style_mood"] == "neutral"
        style0 = base["style"]
        for name, d in AT_THE_DOOR.items():
            before = _st(sp)
            s.sendto(d, dest)
            ok = wait_until(lambda b=before: int(_st(sp)["osc_errors"]) == int(b["osc_errors"]) + 1, 3.0)
            st = _st(sp)
            assert ok, f"{name}: not counted at the door: {before['osc_errors']} -> {st['osc_errors']}"
            assert st["style"] == style0 and st["style_mood"] == "neutral", f"{name} changed the style: {st}"
        # the door forwards at most 4 errors a second to the engine (counted there in input_errors too):
        # let them drain before the engine's own rules are counted one by one
        time.sleep(2.0)
        for name, d in ON_THE_ENGINE.items():
            before = _st(sp)
            s.sendto(d, dest)
            ok = wait_until(lambda b=before: int(_st(sp)["input_errors"]) >= int(b["input_errors"]) + 1, 3.0)
            st = _st(sp)
            assert ok, f"{name}: not counted on the engine: {before['input_errors']} -> {st['input_errors']}"
            assert st["style"] == style0 and st["style_mood"] == "neutral", f"{name} changed the style: {st}"
            assert int(st["osc_errors"]) == int(before["osc_errors"]), f"{name} counted twice"
        assert sp.proc.poll() is None, "the server died"
        # the same hostile messages packed in one bundle: the good one in the middle still applies
        good = raw(MOOD, "s", osc_string("dark"))
        evil = [*list(AT_THE_DOOR.values())[:10], good, *list(ON_THE_ENGINE.values())[:5]]
        s.sendto(bundle(*[e for e in evil if len(e) < 1000]), dest)
        assert wait_until(lambda: _st(sp)["style_mood"] == "dark", 3.0), _st(sp)
        for name, (d, mood) in ACCEPTED.items():
            s.sendto(d, dest)
            assert wait_until(lambda m=mood: _st(sp)["style_mood"] == m, 3.0), f"{name}: {_st(sp)}"
            st = _st(sp)
            assert all(math.isfinite(float(v)) for v in str(st["style"]).split()), st["style"]
        # still obeys: start, play, stop
        sp.send("/liveagent/start")
        assert wait_until(lambda: int(_st(sp)["running"]) == 1, 3.0)
        sp.send("/liveagent/stop")
        assert wait_until(lambda: int(_st(sp)["running"]) == 0, 3.0)
        err_text = [str(e[0]) for e in sp.rx.of("/liveagent/error")]
        assert err_text, "no /liveagent/error at all"
        assert_clean_exit(sp, "hostile style/mood arguments")
        s.close()
    stderr = "".join(sp.stderr)
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr[-3000:]
