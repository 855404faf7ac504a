"""Band policy files whose metadata ``band`` is malformed or lies, built from export/band.onnx (review)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[2]
BAND = ROOT / "export" / "band.onnx"
GOOD = {
    "voices": ["alto", "tenor", "bass"],
    "order": ["bass", "tenor", "alto"],
    "ranges": [[54, 74], [48, 69], [36, 64]],
}


def variant(tmp: Path, name: str, **props: str) -> Path:
    """export/band.onnx with metadata ``props`` replaced (a value of "" removes the key), as tmp/NAME.onnx."""
    m = onnx.load(str(BAND))
    keep = [p for p in m.metadata_props if p.key not in props]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    for k, v in props.items():
        if v != "":
            m.metadata_props.add(key=k, value=v)
    out = tmp / f"{name}.onnx"
    onnx.save(m, str(out))
    return out


def band_json(**kw: object) -> str:
    return json.dumps({**GOOD, **kw})


VARIANTS: dict[str, dict[str, str]] = {
    "two_voices": {
        "band": band_json(voices=["alto", "bass"], order=["bass", "alto"], ranges=[[54, 74], [36, 64]])
    },
    "four_voices": {
        "band": band_json(
            voices=["soprano", "alto", "tenor", "bass"],
            order=["bass", "tenor", "alto", "soprano"],
            ranges=[[60, 80], [54, 74], [48, 69], [36, 64]],
        )
    },
    "range_neg": {"band": band_json(ranges=[[-5, 74], [48, 69], [36, 64]])},
    "range_200": {"band": band_json(ranges=[[54, 200], [48, 69], [36, 64]])},
    "range_inverted": {"band": band_json(ranges=[[74, 54], [48, 69], [36, 64]])},
    "range_outside_policy": {"band": band_json(ranges=[[100, 120], [48, 69], [36, 64]])},
    "order_dup": {"band": band_json(order=["bass", "bass", "alto"])},
    "order_short": {"band": band_json(order=["bass", "tenor"])},
    "order_topdown": {"band": band_json(order=["alto", "tenor", "bass"])},
    "anticipate": {"mode": "anticipate"},
    "not_json": {"band": "{voices: alto"},
    "list": {"band": "[1, 2, 3]"},
    "voices_string": {"band": band_json(voices="atb", order="bta")},
    "ranges_null": {"band": band_json(ranges=None)},
    "ranges_float": {"band": band_json(ranges=[[54.7, 74.2], [48, 69], [36, 64]])},
    "ranges_nan": {"band": band_json(ranges=[[0, 74], [48, 69], [36, 64]]).replace("[[0, 74]", "[[NaN, 74]")},
    "ranges_inf": {
        "band": band_json(ranges=[[0, 74], [48, 69], [36, 64]]).replace("[[0, 74]", "[[Infinity, 74]")
    },
    "deep": {"band": "[" * 100000 + "]" * 100000},
    "huge_int": {"band": band_json(ranges=[[10**400, 74], [48, 69], [36, 64]])},
    "no_band": {"band": ""},
    "names_dup": {"band": band_json(voices=["alto", "alto", "bass"], order=["bass", "alto", "alto"])},
}
VARIANTS["alto_high"] = {"band": band_json(ranges=[[62, 74], [48, 69], [36, 64]])}
