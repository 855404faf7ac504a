"""Static checks of the shipped patches: the .maxpat is a well-formed Max 8 patcher whose wires join real
inlets and outlets, every OSC address a patch uses is one the server implements, and the generated files are
up to date with their builders (patches/build_patches.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from liveagent.live.io import osc
from liveagent.live.io.osc_out import band_note_address

PATCHES = Path(__file__).resolve().parents[2] / "patches"
MAXPAT = PATCHES / "liveagent.maxpat"

SERVER_IN = set(osc.ADDRESSES_IN)
BAND_OUT = {band_note_address(v) for v in ("alto", "tenor", "bass")}
"""``serve --band satb``: one note address per band voice (docs/OSC.md); the bass also on OUT_NOTE."""
SERVER_OUT = {osc.OUT_NOTE, osc.OUT_BEAT, osc.OUT_STATUS, osc.OUT_ERROR} | BAND_OUT

# Max 8's inlet/outlet counts for the classes the patch uses (from Cycling '74's reference and saved
# patchers), independent of the builder: (numinlets, numoutlets), None = depends on the arguments.
MAX_CLASSES: dict[str, tuple[int, int] | None] = {
    "udpsend": (1, 0),
    "udpreceive": (1, 1),
    "route": None,
    "prepend": (1, 1),
    "notein": (1, 3),
    "noteout": (3, 0),
    "makenote": (3, 2),
    "pack": None,
    "unpack": None,
    "loadbang": (1, 1),
    "metro": (2, 1),
    "counter": (5, 4),
    "zl.lookup": (2, 2),
    "sel": None,
    "gate": (2, 1),
    "t": None,
    "!/": (2, 1),
    "print": (1, 0),
    "scale": (6, 1),
    "==": (2, 1),
}


def load() -> dict[str, Any]:
    data = json.loads(MAXPAT.read_text())
    assert isinstance(data, dict)
    return data


def boxes_by_id(patcher: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in patcher["boxes"]:
        box = entry["box"]
        assert box["id"] not in out, f"duplicate id {box['id']}"
        out[box["id"]] = box
    return out


def test_maxpat_is_a_max8_patcher() -> None:
    p = load()["patcher"]
    assert p["fileversion"] == 1
    assert p["appversion"]["major"] >= 8
    assert len(p["rect"]) == 4
    boxes = boxes_by_id(p)
    for box in boxes.values():
        assert box["maxclass"] in {
            "newobj",
            "message",
            "comment",
            "toggle",
            "button",
            "number",
            "flonum",
            "pictslider",
        }
        assert len(box["patching_rect"]) == 4
        if box["numoutlets"]:
            assert len(box["outlettype"]) == box["numoutlets"], box
    assert any(b["maxclass"] == "comment" for b in boxes.values())


def test_maxpat_wires_join_existing_inlets_and_outlets() -> None:
    p = load()["patcher"]
    boxes = boxes_by_id(p)
    assert p["lines"], "no patchlines"
    seen = set()
    for entry in p["lines"]:
        line = entry["patchline"]
        (src, outlet), (dst, inlet) = line["source"], line["destination"]
        assert src in boxes and dst in boxes, line
        assert 0 <= outlet < boxes[src]["numoutlets"], (line, boxes[src])
        assert 0 <= inlet < boxes[dst]["numinlets"], (line, boxes[dst])
        key = (src, outlet, dst, inlet)
        assert key not in seen, f"duplicate patchline {key}"
        seen.add(key)


def test_maxpat_object_arity_matches_max() -> None:
    for box in boxes_by_id(load()["patcher"]).values():
        if box["maxclass"] != "newobj":
            continue
        words = box["text"].split()
        cls, args = words[0], [w for w in words[1:] if not w.startswith("@")]
        assert cls in MAX_CLASSES, f"unexpected Max class {cls!r}: add its inlet/outlet counts to the table"
        want = MAX_CLASSES[cls]
        if want is None:
            want = {
                "route": (2, len(args) + 1),
                "sel": (2 if len(args) == 1 else 1, len(args) + 1),
                "pack": (len(args), 1),
                "unpack": (1, len(args)),
                "t": (1, len(args)),
            }[cls]
        assert (box["numinlets"], box["numoutlets"]) == want, box


def addresses(text: str) -> set[str]:
    return set(re.findall(r"/liveagent(?:/[A-Za-z_]+)+", text))


def test_maxpat_uses_only_server_addresses() -> None:
    texts = [b.get("text", "") for b in boxes_by_id(load()["patcher"]).values() if b["maxclass"] != "comment"]
    used = set().union(*(addresses(t) for t in texts))
    assert used, "no OSC address found"
    assert used <= SERVER_IN | SERVER_OUT, used - SERVER_IN - SERVER_OUT
    # what it sends is server input, what it routes is server output; both directions are covered
    sends = {a for t in texts if not t.startswith("route") for a in addresses(t)}
    routes = {a for t in texts if t.startswith("route") for a in addresses(t)}
    assert sends <= SERVER_IN and routes <= SERVER_OUT
    assert {"/liveagent/note", "/liveagent/start", "/liveagent/stop", "/liveagent/tempo"} <= sends
    assert {osc.OUT_NOTE, osc.OUT_BEAT} <= routes
    ports = [
        b["text"] for b in boxes_by_id(load()["patcher"]).values() if b.get("text", "").startswith("udp")
    ]
    assert f"udpsend 127.0.0.1 {osc.DEFAULT_IN_PORT}" in ports
    assert f"udpreceive {osc.DEFAULT_OUT_PORT}" in ports


def test_pd_abstraction_uses_only_server_addresses() -> None:
    """[oscformat a b] sends /a/b; the receive side routes liveagent -> out/status/error -> note/beat."""
    text = (PATCHES / "liveagent.pd").read_text()
    sent = {"/" + "/".join(m.split()) for m in re.findall(r"oscformat (?:-f \w+ )?([a-z ]+);", text)}
    assert sent == SERVER_IN, sent ^ SERVER_IN
    assert "route liveagent;" in text and "route out status error;" in text and "route note beat;" in text


def test_docs_mention_every_address() -> None:
    readme = (PATCHES / "README.md").read_text()
    for addr in SERVER_IN | SERVER_OUT:
        assert addr in readme, addr


def test_shipped_patches_match_their_builders() -> None:
    r = subprocess.run(
        [sys.executable, str(PATCHES / "build_patches.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
