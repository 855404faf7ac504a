"""How well an anticipating checkpoint's next-note predictors serve the expected-consonance term.

    python -m liveagent.train.predictor_check runs/anticipate/last.pt [--split valid]

The checkpoint plays the split online (greedy, as `liveagent eval`), then at every soprano onset each of its
predictors (the aux head; the key-free relative predictor when it has one) is read on the windows the
policy really saw (its own bass line, not Bach's). Two figures per predictor: how often its most likely
pitch class is the one played (*top-1*), and how often the bass pitch class of highest expected consonance
under it is consonant with the note played (*ceiling*: what a bass that struck at every change could
reach). Measured overall, and again with the soprano a tritone higher from the middle bar (the eval's
adaptation test): in the bar of the jump and in the bar after it. `--teacher` also reads them with Bach's
bass in the window (the training condition).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from liveagent.env.evaluate import EvalConfig, evaluate_policy, tritone_change_step, with_tritone_change
from liveagent.env.policies import from_meta
from liveagent.music.chorales import chorale_split
from liveagent.music.piece import Piece
from liveagent.music.theory import CONSONANT_TWO_VOICE
from liveagent.music.tokens import ONSET_BASE
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.data import build_windows
from liveagent.train.export import set_term_weights
from liveagent.train.networks import PolicyNet, TorchPolicy


def _consonance_table() -> np.ndarray:
    """[12 bass pc, 12 soprano pc] consonant: the graph's own rule (``CONSONANT_TWO_VOICE``)."""
    bass, soprano = np.arange(12)[:, None], np.arange(12)[None, :]
    return CONSONANT_TWO_VOICE[(soprano - bass) % 12].astype(np.float64)


def _pc_probs(
    net: PolicyNet, which: str, perf: torch.Tensor, agent: torch.Tensor, pos: torch.Tensor
) -> np.ndarray:
    """[N, 12] the predictor's pitch-class distribution for the decided step."""
    with torch.no_grad():
        _, _, aux = net.heads(perf, agent, pos)
        assert net.musical is not None and net.ec is not None
        perf1 = net.musical.sounding1(perf.clamp(0, 129))
        assert aux is not None
        from_aux = net.ec.pc_probs_from_tokens(torch.softmax(aux, dim=1), perf1)
        if which == "relative":  # as the graph reads it: the aux head's while the performer is silent
            assert net.relative is not None
            rel = net.relative.pc_probs(net.relative(perf, pos, perf1), perf1)
            return torch.where(perf1.unsqueeze(1) > 0, rel, from_aux).numpy()
        return from_aux.numpy()


def _rows(pieces: Sequence[Piece], offsets: np.ndarray, bar: int | None, perf_next: np.ndarray) -> np.ndarray:
    if bar is None:
        return np.nonzero(perf_next >= ONSET_BASE)[0]
    rows: list[int] = []
    for i, p in enumerate(pieces):
        lo = tritone_change_step(p) + bar * p.grid.steps_per_bar
        hi = min(lo + p.grid.steps_per_bar, p.n_steps)
        rows += [int(offsets[i]) + t for t in range(lo, hi) if p.performer[t] >= ONSET_BASE]
    return np.asarray(rows, dtype=np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--split", default="valid")
    parser.add_argument(
        "--teacher", action="store_true", help="also read them with Bach's bass in the window"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ck = load_checkpoint(args.checkpoint)
    net = ck.build_net().eval()
    set_term_weights(net, ck.recipe.get("export", {}))
    c = net.config
    if c.mode != "anticipate" or net.aux_head is None or net.ec is None:
        parser.error(
            "an anticipating checkpoint with an aux head and the expected-consonance terms is needed"
        )
    table = _consonance_table()
    predictors = ["aux"] + (["relative"] if net.relative is not None else [])
    base = chorale_split(args.split)
    print("predictor lines condition rows top1_pct ceiling_pct")
    for label, pieces in (("no jump", base), ("tritone", [with_tritone_change(p) for p in base])):
        quiet = EvalConfig(progress=False, rewards=False, kl_to_prior=False, adaptation=False)
        played = evaluate_policy(from_meta("p", TorchPolicy(net), c), pieces, quiet)
        own = [dataclasses.replace(p, accompaniment=np.asarray(line, dtype=p.accompaniment.dtype))
               for p, line in zip(pieces, played.lines, strict=True)]  # fmt: skip
        variants = [("own", own)] + ([("bach", list(pieces))] if args.teacher else [])
        for lines, ps in variants:
            ws = build_windows(ps, window=c.window, mode=c.mode, pitch_min=c.pitch_min, pitch_max=c.pitch_max)
            offsets = np.cumsum([0] + [p.n_steps for p in ps])
            bars: tuple[int | None, ...] = (None,) if label == "no jump" else (0, 1)
            for bar in bars:
                idx = _rows(ps, offsets, bar, ws.perf_next)
                perf = torch.from_numpy(ws.performer[idx].astype(np.int64))
                agent = torch.from_numpy(ws.agent[idx].astype(np.int64))
                pos = torch.from_numpy(ws.position[idx])
                played_pc = (ws.perf_next[idx].astype(np.int64) - ONSET_BASE) % 12
                cond = "overall" if bar is None else ("jump bar" if bar == 0 else "bar after")
                for which in predictors:
                    pc = _pc_probs(net, which, perf, agent, pos)
                    top1 = 100.0 * float((pc.argmax(1) == played_pc).mean())
                    ceiling = 100.0 * float(table[np.argmax(pc @ table.T, axis=1), played_pc].mean())
                    where = f"{label}:{cond}".replace(" ", "_")
                    print(which, lines, where, len(idx), f"{top1:.1f} {ceiling:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
