"""Floods of /liveagent/style and /liveagent/mood (single datagrams and 60-message bundles, ~10,000
messages/s) into a real `serve --policy style` at 240 BPM while a performer plays: the controls are
dropped and counted by the control limit, the performer is still answered, at most a few misses, the
engine's decision latency and the RSS stay bounded, no note is left sounding at the receiver, and SIGTERM
*during* the flood exits within the stage rule with every note released by the engine itself."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from liveagent.live.commands.bench import rss_mb
from tests.live.receiver_notes import osc_notes, overlaps
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review6.helpers import (
    Performer,
    assert_clean_exit,
    assert_no_stuck_notes,
    bundle,
    f32,
    osc_string,
    raw,
    udp,
)

log = logging.getLogger(__name__)
BPM = 240.0
MOODS = ("calm", "busy", "bright", "dark", "neutral", "leaping", "syncopated", "nope")


class StyleFlood:
    """Two sockets: one sends single style/mood datagrams, one 60-message bundles; ~``rate`` msgs/s."""

    def __init__(self, port: int, rate: float = 10_000.0) -> None:
        self.port, self.rate = port, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _msgs(self, i: int) -> list[bytes]:
        x = ((i * 37) % 200) / 100.0 - 1.0
        return [
            raw("/liveagent/style", "ff", f32(x, -x)),
            raw("/liveagent/mood", "s", osc_string(MOODS[i % len(MOODS)])),
        ]

    def _run(self) -> None:
        a, b = udp(), udp()
        dest = ("127.0.0.1", self.port)
        i = 0
        t0 = time.perf_counter()
        while not self._stop.is_set():
            for m in self._msgs(i):
                a.sendto(m, dest)
            elems = [m for k in range(30) for m in self._msgs(i + k)]
            b.sendto(bundle(*elems), dest)
            self.sent += 62
            i += 1
            ahead = self.sent / self.rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
        a.close()
        b.close()

    def __enter__(self) -> StyleFlood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _int(st: dict[str, object], k: str) -> int:
    return int(st.get(k, 0) or 0)  # type: ignore[call-overload]


@pytest.mark.timeout(180)
def test_style_mood_flood_while_playing() -> None:
    args = ("--policy", "style", "--no-record", "--rt-priority", "0", "--bpm", f"{BPM:g}", "--autostart")
    with ServeProcess(*args) as sp, Performer(sp, BPM):
        assert wait_until(lambda: _int(sp.status(), "notes_out") >= 4, 10), sp.status()
        time.sleep(2.0)
        st0 = sp.status()
        rss0 = rss_mb(sp.proc.pid)
        with StyleFlood(sp.osc_port) as flood:
            t_flood = time.perf_counter_ns()
            time.sleep(5.0)
            st_mid = sp.status(timeout=2.0)  # the status answers through the flood
            rss_mid = rss_mb(sp.proc.pid)
        t_end = time.perf_counter_ns()
        rate = flood.sent / ((t_end - t_flood) / 1e9)
        time.sleep(1.5)
        st1 = sp.status()
        figures = (
            f"flood {flood.sent} msgs ({rate:.0f}/s); control_limited "
            f"{_int(st0, 'osc_control_limited')}->{_int(st1, 'osc_control_limited')}, flood_dropped "
            f"{_int(st0, 'osc_flood_dropped')}->{_int(st1, 'osc_flood_dropped')}; misses "
            f"{_int(st0, 'misses')}->{_int(st1, 'misses')}, skipped {_int(st0, 'skipped')}->"
            f"{_int(st1, 'skipped')}; decision p99 {st0['decision_p99_us']}->{st_mid['decision_p99_us']} us, "
            f"lateness p99 {st0['lateness_p99_us']}->{st1['lateness_p99_us']} us; RSS {rss0:.1f}->"
            f"{rss_mid:.1f} MB; input_errors {_int(st1, 'input_errors')}; mood {st1['style_mood']}"
        )
        log.info("%s", figures)
        print(figures)
        assert rate > 3000, f"the flood did not flood: {figures}"
        dropped = (_int(st1, "osc_control_limited") - _int(st0, "osc_control_limited")) + (
            _int(st1, "osc_flood_dropped") - _int(st0, "osc_flood_dropped")
        )
        assert dropped > flood.sent // 2, f"the flood was not counted: {figures}"
        assert _int(st1, "misses") - _int(st0, "misses") <= 4, figures
        assert _int(st1, "skipped") - _int(st0, "skipped") <= 4, figures
        assert float(st1["decision_max_us"]) < 250_000, figures  # a quarter second: a blown-up decision
        assert rss_mid - rss0 < 50, figures
        on_after = [e for e in osc_notes(sp.rx) if e[2] > 0 and t_flood < e[0] < t_end]
        assert len(on_after) >= 5, f"the agent stopped answering during the flood: {figures}"
        # the style still steers after the flood
        sp.send("/liveagent/mood", "calm")
        assert wait_until(lambda: sp.status()["style_mood"] == "calm", 5), sp.status()
        # SIGTERM in the middle of a second flood
        with StyleFlood(sp.osc_port):
            time.sleep(1.0)
            assert_clean_exit(sp, "a style/mood flood")
    assert_no_stuck_notes(sp, "SIGTERM during a style flood")
    assert overlaps(osc_notes(sp.rx)) == []
