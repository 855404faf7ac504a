"""A flood of malformed OSC datagrams from its own process (so it does not share the sender's GIL)."""

from __future__ import annotations

import random
import socket
import struct
import sys
import time


def garbage(rng: random.Random) -> bytes:
    """One malformed datagram: random bytes, truncated messages, broken type tags, bundles with negative
    or oversized element sizes, deep nesting, unterminated addresses."""
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 300))
    if kind == 1:
        return b"/liveagent/note\x00,ii\x00" + rng.randbytes(rng.randrange(0, 7))  # args cut short
    if kind == 2:
        return b"#bundle\x00" + rng.randbytes(8) + struct.pack(">i", -rng.randrange(1, 2**31))
    if kind == 3:
        return b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 10_000) + b"/liveagent/stop\x00,\x00\x00\x00"
    if kind == 4:
        inner = b"/liveagent/panic\x00\x00\x00\x00,\x00\x00\x00"
        for _ in range(rng.randrange(5, 40)):  # nested bundles, deeper than any limit
            inner = b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", len(inner)) + inner
        return inner
    if kind == 5:
        return b"/liveagent/mute" + rng.randbytes(rng.randrange(0, 20)).replace(b"\x00", b"x")  # no NUL
    if kind == 6:
        return b"/liveagent/stop\x00,i\x00\x00"  # a type tag promising an int that is not there
    return b"/liveagent/tempo\x00\x00\x00\x00,f\x00\x00" + rng.randbytes(2)  # a float cut in half


def main() -> None:
    port, seconds, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(9)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    end = time.perf_counter() + seconds
    sent = 0
    t_next = time.perf_counter()
    while (now := time.perf_counter()) < end:
        if now < t_next:
            time.sleep(t_next - now)
        for _ in range(10):
            sock.sendto(garbage(rng), ("127.0.0.1", port))
            sent += 1
        t_next += 10 / rate
    print(sent, flush=True)


if __name__ == "__main__":
    main()
