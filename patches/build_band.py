"""The band parts of the Pd patches: ``liveagent serve --band satb`` plays alto, tenor and bass under the
performer's soprano, each voice on its own OSC address ``/liveagent/out/VOICE/note`` (docs/OSC.md).

Kept apart from build_pd.py (the solo patch's builder) so each module stays small. The abstraction gets one
outlet per voice after its three v1 outlets, so a patch written for v1 keeps its wiring; the v1 outlet 1
(``/liveagent/out/note``) still carries the lowest voice, the bass, and the help patch mutes its own voice
for it while **band** is ticked (else the bass would sound twice).
"""

from __future__ import annotations

from collections.abc import Callable

from pdwriter import Canvas

VOICES = ("alto", "tenor", "bass")
"""Band voices top-down; the order of the abstraction's outlets 4, 5, 6 (the shared band decision)."""
BAND_CHANNELS = (2, 3, 4)
"""MIDI channels of the help patch's ``[noteout]`` per voice: ``serve --band-channels``' default, so the
same synth setup serves the server's MIDI out and the patch's."""
BAND_RECEIVE = "liveagent-band"
"""Receive name of the help patch's band toggle: ``; liveagent-band 1`` ticks it from anywhere."""

SynthBuilder = Callable[[Canvas, int, int, str, str, float], int]
"""build_pd._synth: (canvas, x, y, name, wave, gain) -> the subpatch box (inlet ``pitch velocity``)."""


def abstraction_band_outlets(c: Canvas, reject: int, outlet: int) -> list[int]:
    """In [liveagent]: ``[route alto tenor bass]`` on the reject outlet of ``[route note beat]`` (messages
    ``VOICE note P V`` from ``/liveagent/out/VOICE/note``), a ``[route note]`` per voice, an outlet per voice.

    ``reject``/``outlet`` is where ``VOICE note P V`` leaves the existing router. Outlets are placed right of
    the v1 ones (Pd orders outlets by x), so they are outlets 4, 5, 6. Returns the outlet boxes."""
    by_voice = c.obj(910, 485, "route " + " ".join(VOICES))
    c.connect(reject, outlet, by_voice, 0)
    outs = []
    for i, _voice in enumerate(VOICES):
        x = 910 + 90 * i
        note = c.obj(x, 515, "route note")
        c.connect(by_voice, i, note, 0)
        out = c.obj(x, 550, "outlet")
        c.connect(note, 0, out, 0)
        outs.append(out)
    c.text(910, 455, "band: VOICE note P V", width=20)
    return outs


def help_band_section(c: Canvas, la: int, y: int, synth: SynthBuilder) -> int:
    """The help patch's band corner at height ``y``: per voice (outlets 4-6 of ``la``) the pitch and velocity
    in number boxes, a built-in voice and ``[noteout]`` on its channel; a **band** toggle.

    Returns the ``[spigot 1]`` the caller puts between outlet 1 and the solo accompaniment's voice: band on
    closes it (outlet 1 carries the bass too), band off opens it. No ``[makenote]``: the server sends every
    note-off itself."""
    c.text(
        20,
        y,
        "band satb: start the server with   liveagent serve --band satb --osc-port 9000 --osc-out"
        " 127.0.0.1:9001   (three agents, alto tenor bass, harmonise what you play) and tick 'band':"
        " outlets 4 5 6 give each voice's notes (pitch velocity) to its own voice and MIDI channel 2 3 4."
        " Outlet 1 keeps the bass (v1 clients), so 'band' mutes its saw voice above.",
        width=104,
    )
    band = c.obj(20, y + 75, f"tgl 19 0 empty {BAND_RECEIVE} empty 17 7 0 10 #fcfcfc #000000 #000000 0 1")
    c.text(45, y + 77, "band", width=6)
    solo_open = c.obj(20, y + 105, "== 0")
    c.connect(band, 0, solo_open, 0)
    solo = c.obj(20, 528, "spigot 1")  # right under [liveagent], above the solo voice it gates
    c.connect(solo_open, 0, solo, 1)
    c.text(95, 528, "<- closed by 'band'", width=20)
    for i, voice in enumerate(VOICES):
        x = 260 + 270 * i
        c.text(x, y + 75, f"outlet {4 + i}: {voice}", width=18)
        unpack = c.obj(x, y + 100, "unpack f f")
        c.connect(la, 3 + i, unpack, 0)
        pitch = c.floatatom(x, y + 130, 4)
        velocity = c.floatatom(x + 50, y + 130, 4)
        c.connect(unpack, 0, pitch, 0)
        c.connect(unpack, 1, velocity, 0)
        c.text(x + 95, y + 130, "pitch vel", width=10)
        voice_box = synth(c, x, y + 160, f"{voice}-voice", "phasor~", 0.06)
        c.connect(la, 3 + i, voice_box, 0)
        noteout = c.obj(x + 130, y + 100, f"noteout {BAND_CHANNELS[i]}")
        c.connect(unpack, 0, noteout, 0)
        c.connect(unpack, 1, noteout, 1)
    return solo
