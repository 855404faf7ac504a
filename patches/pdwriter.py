"""A tiny writer for Pure Data patch files, so the shipped patches are built from readable code.

Why: a .pd file wires objects by their creation index (``#X connect 3 0 7 1``); edited by hand, one inserted
box silently rewires everything after it. Here every box gets a Python name and connections refer to names.
The output is plain Pd 0.53 text that opens in any vanilla Pd (no externals).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass
class Box:
    """One line of a canvas: an object, message, comment, number box or a nested subpatch."""

    kind: str
    """'obj', 'msg', 'text', 'floatatom', 'symbolatom' or 'sub' (a nested canvas)."""
    x: int
    y: int
    text: str
    """Pd text with Pd escapes already in place (write ``\\$1``, ``\\;`` and ``\\,`` yourself)."""
    sub: Canvas | None = None
    """The nested canvas when kind == 'sub'."""


@dataclass
class Canvas:
    """A Pd canvas (top level or ``[pd NAME]`` subpatch); boxes are numbered in insertion order."""

    width: int = 900
    height: int = 640
    name: str = ""
    """Subpatch name (empty for a top-level patch)."""
    font: int = 12
    boxes: list[Box] = field(default_factory=list)
    wires: list[tuple[int, int, int, int]] = field(default_factory=list)

    def _add(self, box: Box) -> int:
        self.boxes.append(box)
        return len(self.boxes) - 1

    def obj(self, x: int, y: int, text: str) -> int:
        return self._add(Box("obj", x, y, text))

    def msg(self, x: int, y: int, text: str) -> int:
        return self._add(Box("msg", x, y, text))

    def text(self, x: int, y: int, text: str, width: int | None = None) -> int:
        """A comment; ``width`` (characters) wraps it. Commas and semicolons are escaped here: Pd saves them
        as separate atoms (`` \\, ``), and glued to a word they would show up with their backslash."""
        text = text.replace(",", " \\,").replace(";", " \\;")
        return self._add(Box("text", x, y, text + (f", f {width}" if width else "")))

    def floatatom(self, x: int, y: int, width: int = 5, label: str = "-") -> int:
        return self._add(Box("floatatom", x, y, f"{width} 0 0 0 {label} - - 0"))

    def symbolatom(self, x: int, y: int, width: int = 10) -> int:
        return self._add(Box("symbolatom", x, y, f"{width} 0 0 0 - - - 0"))

    def toggle(self, x: int, y: int, size: int = 19, init: bool = False) -> int:
        """A toggle; ``init`` saves it on and makes it send 1 at load."""
        flag = 1 if init else 0
        return self.obj(
            x, y, f"tgl {size} {flag} empty empty empty 17 7 0 10 #fcfcfc #000000 #000000 {flag} 1"
        )

    def slider(
        self,
        x: int,
        y: int,
        *,
        vertical: bool = False,
        length: int = 128,
        lo: float = 0.0,
        hi: float = 127.0,
        receive: str = "empty",
    ) -> int:
        """An [hsl] (or [vsl]) from ``lo`` to ``hi``, ``length`` pixels long, its knob in the middle, not sent
        at load; ``receive`` names it for messages from anywhere (``; NAME 0.5`` moves it and it sends)."""
        w, h = (15, length) if vertical else (length, 15)
        kind = "vsl" if vertical else "hsl"
        mid = (length - 1) * 50  # the knob's position in hundredths of a pixel: the middle
        colours = "#fcfcfc #000000 #000000"
        return self.obj(
            x, y, f"{kind} {w} {h} {lo:g} {hi:g} 0 0 empty {receive} empty 0 -9 0 10 {colours} {mid} 1"
        )

    def bang(self, x: int, y: int, size: int = 19) -> int:
        return self.obj(x, y, f"bng {size} 250 50 0 empty empty empty 17 7 0 10 #fcfcfc #000000 #000000")

    def subpatch(self, x: int, y: int, name: str, width: int = 600, height: int = 400) -> tuple[int, Canvas]:
        sub = Canvas(width=width, height=height, name=name, font=self.font)
        return self._add(Box("sub", x, y, f"pd {name}", sub)), sub

    def connect(self, src: int, outlet: int, dst: int, inlet: int = 0) -> None:
        for i in (src, dst):
            if not 0 <= i < len(self.boxes):
                raise IndexError(f"no box {i} in canvas {self.name or 'top'}")
        self.wires.append((src, outlet, dst, inlet))

    def chain(self, *boxes: int) -> None:
        """Connect outlet 0 of each box to inlet 0 of the next."""
        for a, b in itertools.pairwise(boxes):
            self.connect(a, 0, b, 0)

    def render(self, x: int = 80, y: int = 60) -> str:
        if self.name:
            head = f"#N canvas {x} {y} {self.width} {self.height} {self.name} 0;"
        else:
            head = f"#N canvas {x} {y} {self.width} {self.height} {self.font};"
        lines = [head]
        for b in self.boxes:
            if b.kind == "sub":
                assert b.sub is not None
                lines.append(b.sub.render(x + 40, y + 40))
                lines.append(f"#X restore {b.x} {b.y} {b.text};")
            else:
                lines.append(f"#X {b.kind} {b.x} {b.y} {b.text};")
        lines += [f"#X connect {s} {o} {d} {i};" for s, o, d, i in self.wires]
        return "\n".join(lines)
