"""Hundreds of thousands of *distinct* bad inputs (unknown moods of 50 characters, unknown addresses, each
different) in bundles from 8 sockets into a real `serve --policy style`: nothing keyed by the text of an
error may grow, so the RSS stays flat, the errors are counted, stderr stays small (summarized), and the
server still answers, steers and stops promptly."""

from __future__ import annotations

import logging
import time

import pytest

from liveagent.live.commands.bench import rss_mb
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review6.helpers import assert_clean_exit, bundle, osc_string, raw, udp

log = logging.getLogger(__name__)


@pytest.mark.timeout(120)
def test_distinct_bad_inputs_do_not_grow_memory_or_stderr() -> None:
    with ServeProcess("--policy", "style", "--no-record", "--rt-priority", "0", "--bpm", "240") as sp:
        dest = ("127.0.0.1", sp.osc_port)
        socks = [udp() for _ in range(8)]
        time.sleep(1.0)
        rss0, st0, err0 = rss_mb(sp.proc.pid), sp.status(), len("".join(sp.stderr))
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 12.0:
            for s in socks:
                msgs = [raw("/liveagent/mood", "s", osc_string(f"m{n + k:08d}x" * 5)) for k in range(8)]
                msgs += [raw(f"/liveagent/u{n + k:09d}", "") for k in range(8)]
                s.sendto(bundle(*msgs), dest)
                n += 16
            time.sleep(0.002)
        time.sleep(1.5)
        st, rss1 = sp.status(), rss_mb(sp.proc.pid)
        stderr_growth = len("".join(sp.stderr)) - err0
        report = (
            f"{n} distinct bad messages; RSS {rss0:.1f} -> {rss1:.1f} MB; osc_errors {st['osc_errors']}, "
            f"input_errors {st0['input_errors']}->{st['input_errors']}, "
            f"flood_dropped {st['osc_flood_dropped']}, control_limited {st['osc_control_limited']}; "
            f"stderr +{stderr_growth} B"
        )
        log.info("%s", report)
        assert n > 100_000, report
        assert int(st["input_errors"]) > int(st0["input_errors"]), report
        assert int(st["osc_flood_dropped"]) + int(st["osc_control_limited"]) > n // 2, report
        assert rss1 - rss0 < 20, report
        assert stderr_growth < 100_000, report
        assert st["style_mood"] == "neutral", report
        sp.send("/liveagent/mood", "busy")
        assert wait_until(lambda: sp.status()["style_mood"] == "busy", 3.0), sp.status()
        assert_clean_exit(sp, "distinct bad inputs")
        for s in socks:
            s.close()
