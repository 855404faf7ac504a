"""The rule-based reward terms, vectorized over N environments (numpy, no Python loop over envs).

Every term is a named function ``term(ctx: StepContext, cfg: RewardConfig) -> float32[N]`` returning the
*unweighted* value of one rule at one step for every env (usually -1, 0 or +1).
:class:`~liveagent.env.rewards.RewardTracker` keeps the per-env state the rules need and builds each
step's :class:`StepContext`; the environment multiplies each term by its weight in :class:`RewardConfig`
and reports each weighted term separately in ``info["reward_terms"]``; the step's reward is their sum
(plus the learned terms the trainers add, see ``liveagent.env.rewards.LearnedTerm``).

Conventions: the agent's token is resolved first (HOLD while silent means REST). A *sonority* is the pair of
sounding pitches (performer, agent) at a step; a *new* sonority is one where either voice has an onset and
both sound. Melodic intervals are between consecutive onsets of the agent (rests in between do not break
the line), signed (positive = up), in semitones.

Sources: Fux, *Gradus ad Parnassum* (1725), as in Mann's translation *The Study of Counterpoint*: two-voice
consonance (fourth dissonant against the bass), parallel perfect intervals, preference for stepwise motion.
Piston, *Harmony* (5th ed., ch. 3, 9) and Huron, "Tone and Voice" (Music Perception 19(1), 2001): hidden
(direct) fifths/octaves, voice crossing, leap recovery ("post-skip reversal"), avoidance of large leaps.
Jaques et al., "Tuning Recurrent Neural Networks with Reinforcement Learning" (RL Tuner, 2017, and its
magenta implementation ``rl_tuner.py``): notes in key, excessive repetition thresholds, leap resolution and
two leaps in the same direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from liveagent.music.theory import CONSONANT_TWO_VOICE, CONSONANT_UPPER_VOICES, FIFTH, UNISON
from liveagent.music.tokens import NO_PITCH, Grid

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class RewardConfig:
    """Named weights of the reward terms (the step reward is ``sum(weight * term)``) and the rules' knobs.

    A weight of 0 switches a term off (it is still reported, as 0).
    """

    consonance: float = 1.0
    """+1 for a consonant, -1 for a dissonant new sonority with the performer (Fux)."""
    in_key: float = 1.0
    """-1 for an agent onset outside the piece's key (RL Tuner's ``reward_key``, penalty -1)."""
    stepwise: float = 0.2
    """+1 for an onset a step (1-2 semitones) from the agent's previous onset (Fux: conjunct motion)."""
    large_leap: float = 1.0
    """-1 for a melodic leap larger than ``large_leap_semitones`` (RL Tuner, Piston)."""
    leap_resolution: float = 0.5
    """At the onset after a leap of ``leap_semitones`` or more: +1 for a step back the other way, else -1."""
    consecutive_leaps: float = 0.5
    """-1 for two leaps (``leap_semitones`` or more) in a row in the same direction (RL Tuner)."""
    parallel_perfect: float = 1.0
    """-1 for parallel fifths or octaves/unisons against the performer (Fux)."""
    hidden_perfect: float = 0.5
    """-1 for hidden (direct) fifths/octaves: similar motion into a perfect interval, upper voice leaping."""
    contrary_motion: float = 0.2
    """+1 when both voices move, in opposite directions (Fux: contrary motion is to be preferred)."""
    repetition: float = 2.0
    """-1 for an excessively repeated note (RL Tuner's ``detect_repeating_notes`` thresholds)."""
    on_beat: float = 0.1
    """+1 for an agent onset on a beat (metrical accent)."""
    sync: float = 0.1
    """+1 for an agent onset that coincides with a performer onset (rhythmic alignment)."""
    weak_onset: float = 0.5
    """-1 for an onset off the eighth-note grid that does not coincide with a performer onset."""
    silent_bar: float = 0.5
    """-1 per step once the agent has been silent for a whole bar while the performer plays."""
    long_note: float = 0.5
    """-1 per step once the agent's note has sounded for more than a bar (RL Tuner: notes held too long)."""
    range: float = 2.0
    """-1 for an onset outside the agent's ``pitch_min..pitch_max``."""
    voice_crossing: float = 1.0
    """-1 for a new sonority where the agent crosses the performer (above it when it is the lower voice)."""
    vertical_consonance: float = 0.0
    """+1 / -1 at every step where both voices sound (time-weighted: a held clash is heard all along, and
    re-striking a consonant note earns nothing a held one does not)."""
    change_consonance: float = 0.0
    """+1 / -1 where the performer strikes a new note while the agent sounds: anticipation is judged here."""
    density: float = 0.0
    """-1 for an onset beyond ``max_notes_per_bar`` in the trailing bar; at each bar's last step, -1 per
    note short of ``min_notes_per_bar`` (the chorale bass plays 1-8 notes a bar, 4.5 on average)."""
    offbeat: float = 0.0
    """-1 for an onset off the beat (the chorale bass puts 25 % of its notes there): calibrates the share."""
    independent_onset: float = 0.0
    """+1 for an agent onset while the performer holds its note (a bass that moves on its own; Bach's
    chorale basses do so in 39 % of their moves, a consonance-rewarded follow policy in 13 %)."""
    parallel_imperfect: float = 0.0
    """-1 for parallel thirds or sixths (both voices move the same way into the same imperfect interval):
    a bass that shadows the melody in thirds is consonant but not a second voice."""

    agent_is_lower: bool = True
    """The agent is the lower voice (the bass under a soprano); False: it plays above the performer."""
    fourth_dissonant: bool = True
    """Two-voice counterpoint: the perfect fourth above the lower voice is a dissonance (Fux)."""
    leap_semitones: int = 7
    """A leap that needs resolution: a fifth or more (RL Tuner's ``detect_leap_up_back``)."""
    large_leap_semitones: int = 12
    """Leaps larger than this (more than an octave) are penalized."""
    max_repeats: int = 4
    """RL Tuner: an onset repeating a pitch struck more than this many times in a row is excessive..."""
    max_repeats_broken: int = 6
    """...or more than this many times when holds or rests come between the strikes."""
    max_notes_per_bar: int = 8
    """``density``: more onsets than this in a bar are penalized (the chorale bass's 95th percentile)."""
    min_notes_per_bar: int = 2
    """``density``: fewer onsets than this in a bar are penalized at its last step."""

    def weights(self) -> dict[str, float]:
        """Term name -> weight, in :data:`TERMS` order."""
        return {name: float(getattr(self, name)) for name in TERMS}


@dataclass
class StepContext:
    """Everything the terms read at one step, each array ``[N]`` (computed once by :class:`RewardTracker`)."""

    action: IntArray
    """The agent's resolved token at t."""
    agent_onset: BoolArray
    agent_pitch: IntArray
    """The agent's sounding pitch at t (``NO_PITCH`` when silent)."""
    agent_prev: IntArray
    """The agent's sounding pitch at t-1."""
    perf_onset: BoolArray
    perf_pitch: IntArray
    """The performer's sounding pitch at t (revealed after the agent chose)."""
    perf_prev: IntArray
    position: IntArray
    """Step inside the bar."""
    interval: IntArray
    """Signed melodic interval from the agent's previous onset to this onset (0 when none)."""
    has_interval: BoolArray
    """This step is an onset and the agent had an earlier onset."""
    prev_interval: IntArray
    """Signed melodic interval between the agent's two previous onsets (0 when none)."""
    repeat_pitch: IntArray
    """Pitch of the current run of repeated onsets before this step."""
    repeat_count: IntArray
    """How many onsets of ``repeat_pitch`` the run had before this step."""
    repeat_broken: BoolArray
    """RL Tuner's scan back from this onset met holds or rests (between the run's strikes or just before)."""
    held_steps: IntArray
    """Steps the agent's current note has sounded, t included (0 when silent)."""
    silent_steps: IntArray
    """Steps the agent has been silent, t included (0 when sounding)."""
    key_mask: BoolArray
    """``[N, 12]`` in-key pitch classes of each env's (transposed) piece."""
    bar_onsets: IntArray
    """Agent onsets in the trailing bar, t included."""
    grid: Grid
    pitch_min: int
    pitch_max: int
    sonority: BoolArray = field(init=False)
    """A new sonority at t: either voice strikes a note and both sound (the ear judges it afresh)."""
    similar: BoolArray = field(init=False)
    """Both voices sounded at t-1 and t, both moved, in the same direction."""
    contrary: BoolArray = field(init=False)
    """Both voices sounded at t-1 and t, both moved, in opposite directions."""
    ic_now: IntArray = field(init=False)
    """Vertical interval class (0..11) at t (meaningless where a voice is silent)."""
    ic_prev: IntArray = field(init=False)
    """Vertical interval class at t-1."""

    def __post_init__(self) -> None:
        both = (self.agent_pitch != NO_PITCH) & (self.perf_pitch != NO_PITCH)
        self.sonority = (self.agent_onset | self.perf_onset) & both
        both_prev = (self.agent_prev != NO_PITCH) & (self.perf_prev != NO_PITCH)
        da = self.agent_pitch - self.agent_prev
        dp = self.perf_pitch - self.perf_prev
        self.similar = both & both_prev & (da * dp > 0)
        self.contrary = both & both_prev & (da * dp < 0)
        self.ic_now = np.abs(self.agent_pitch - self.perf_pitch) % 12
        self.ic_prev = np.abs(self.agent_prev - self.perf_prev) % 12


def _bonus(cond: BoolArray) -> FloatArray:
    """+1 where ``cond``, else 0."""
    return cond.astype(np.float32)


def _penalty(cond: BoolArray) -> FloatArray:
    """-1 where ``cond``, else 0."""
    return np.negative(cond, dtype=np.float32)


def _lower_upper(ctx: StepContext, cfg: RewardConfig) -> tuple[IntArray, IntArray]:
    """(lower, upper) voice pitches by role (agent below the performer when ``agent_is_lower``)."""
    if cfg.agent_is_lower:
        return ctx.agent_pitch, ctx.perf_pitch
    return ctx.perf_pitch, ctx.agent_pitch


def consonance(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """+1 consonant / -1 dissonant at each new sonority.

    Fux, *Gradus*, book I: perfect (unison, fifth, octave) and imperfect (thirds, sixths) consonances;
    seconds, sevenths and the tritone are dissonant, and so is the perfect fourth above the lowest voice
    in two-voice writing (``fourth_dissonant``). Intervals are reduced mod 12 (compound = simple) and
    measured from the sounding lower pitch, whichever voice it is.
    """
    ok = _consonant(ctx, cfg)
    return _bonus(ctx.sonority & ok) + _penalty(ctx.sonority & ~ok)


def in_key(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for an onset whose pitch class is outside the piece's key.

    RL Tuner (Jaques et al. 2017) ``reward_key``: penalty -1 for notes not in key. The key is
    ``Piece.key`` (Krumhansl-Schmuckler estimate unless given); minor admits the raised 6th and 7th.
    """
    pc = ctx.agent_pitch % 12  # NO_PITCH (-1) maps to 11, masked out by agent_onset below
    ok = ctx.key_mask[np.arange(pc.shape[0]), pc]
    return _penalty(ctx.agent_onset & ~ok)


def stepwise(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """+1 for moving by a step (1 or 2 semitones) from the previous onset.

    Fux: conjunct motion is the norm of a good line; RL Tuner's ``reward_preferred_intervals`` also
    rewards seconds. Repeated notes are neutral here (see :func:`repetition`).
    """
    size = np.abs(ctx.interval)
    return _bonus(ctx.has_interval & (size >= 1) & (size <= 2))


def large_leap(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for a melodic leap larger than an octave (``large_leap_semitones``).

    RL Tuner ``reward_preferred_intervals`` penalizes intervals over an octave; Piston, *Harmony* ch. 9:
    leaps beyond the octave are avoided in the bass of chorale style.
    """
    return _penalty(ctx.has_interval & (np.abs(ctx.interval) > cfg.large_leap_semitones))


def leap_resolution(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """At the onset after a leap of a fifth or more: +1 if it steps back in the opposite direction, else -1.

    Fux / Jeppesen: a leap is followed by stepwise motion in the opposite direction; Huron (2006,
    *Sweet Anticipation*, "post-skip reversal"); RL Tuner's ``detect_leap_up_back`` (LEAP_RESOLVED).
    """
    pending = ctx.has_interval & (np.abs(ctx.prev_interval) >= cfg.leap_semitones)
    size = np.abs(ctx.interval)
    back = (np.sign(ctx.interval) == -np.sign(ctx.prev_interval)) & (size >= 1) & (size <= 2)
    return _bonus(pending & back) + _penalty(pending & ~back)


def consecutive_leaps(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for a leap that follows a leap in the same direction.

    RL Tuner ``detect_leap_up_back`` (LEAP_DOUBLED, punished); Fux: two leaps the same way are avoided
    unless they outline a triad.
    """
    both = (np.abs(ctx.interval) >= cfg.leap_semitones) & (np.abs(ctx.prev_interval) >= cfg.leap_semitones)
    same = np.sign(ctx.interval) == np.sign(ctx.prev_interval)
    return _penalty(ctx.has_interval & both & same)


def _perfect(ic: IntArray) -> BoolArray:
    return np.asarray((ic == UNISON) | (ic == FIFTH))


def parallel_perfect(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for parallel fifths or octaves (unisons) between the agent and the performer.

    Fux, *Gradus* book II: from one perfect consonance to another of the same kind in parallel motion is
    forbidden (the voices lose their independence). Compound intervals count (mod 12).
    """
    return _penalty(ctx.similar & _perfect(ctx.ic_now) & (ctx.ic_now == ctx.ic_prev))


def hidden_perfect(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for hidden (direct) fifths/octaves: similar motion into a perfect interval with a leap above.

    Piston, *Harmony* ch. 3: between the outer voices, approaching a perfect fifth or octave by similar
    motion is acceptable only when the upper voice moves by step. Parallel ones are
    :func:`parallel_perfect`'s.
    """
    upper_move = ctx.perf_pitch - ctx.perf_prev if cfg.agent_is_lower else ctx.agent_pitch - ctx.agent_prev
    return _penalty(
        ctx.similar & _perfect(ctx.ic_now) & (ctx.ic_now != ctx.ic_prev) & (np.abs(upper_move) > 2)
    )


def contrary_motion(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """+1 when both voices move in opposite directions.

    Fux, *Gradus* book II: of the three motions contrary motion is preferred, as it keeps the voices
    independent; Piston ch. 3: the outer voices move best in contrary motion. It also tells a real bass
    from one that merely shadows the melody in parallel tenths (consonant, but not a second voice).
    """
    return _bonus(ctx.contrary)


def repetition(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for an excessively repeated note.

    RL Tuner ``detect_repeating_notes``: counting back from the new note, the same pitch struck more than
    4 times in a row (``max_repeats``), or more than 6 when holds or rests come between the strikes
    (``max_repeats_broken``), is excessive.
    """
    same = ctx.agent_onset & (ctx.agent_pitch == ctx.repeat_pitch)
    limit = np.where(ctx.repeat_broken, cfg.max_repeats_broken, cfg.max_repeats)
    return _penalty(same & (ctx.repeat_count > limit))


def on_beat(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """+1 for an onset on a beat: the bass articulates the metre (Piston ch. 13, harmonic rhythm)."""
    return _bonus(ctx.agent_onset & (ctx.position % ctx.grid.steps_per_beat == 0))


def sync(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """+1 for an onset together with the performer's (homorhythm of chorale texture; ReaLchords' rhythm)."""
    return _bonus(ctx.agent_onset & ctx.perf_onset)


def weak_onset(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for an onset off the eighth-note grid that the performer does not share.

    Fux's species never subdivide the beat below the eighth against the cantus; a sixteenth-note onset
    alone against the melody sounds like a stumble in an accompaniment.
    """
    half = max(1, ctx.grid.steps_per_beat // 2)
    off = ctx.agent_onset & (ctx.position % half != 0) & ~ctx.perf_onset
    return _penalty(off)


def silent_bar(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 per step once the agent has been silent for a whole bar while the performer plays."""
    bad = (ctx.silent_steps >= ctx.grid.steps_per_bar) & (ctx.perf_pitch != NO_PITCH)
    return _penalty(bad)


def long_note(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 per step once a note has sounded for more than a bar (RL Tuner: notes held too long)."""
    return _penalty(ctx.held_steps > ctx.grid.steps_per_bar)


def range_(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for an onset outside the part's range (``pitch_min..pitch_max``, e.g. the bass's 36..64)."""
    out = (ctx.agent_pitch < ctx.pitch_min) | (ctx.agent_pitch > ctx.pitch_max)
    return _penalty(ctx.agent_onset & out)


def voice_crossing(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for a new sonority where the voices cross (Piston ch. 3; Huron 2001: crossing blurs the streams)."""
    lower, upper = _lower_upper(ctx, cfg)
    return _penalty(ctx.sonority & (lower > upper))


def _consonant(ctx: StepContext, cfg: RewardConfig) -> BoolArray:
    table = CONSONANT_TWO_VOICE if cfg.fourth_dissonant else CONSONANT_UPPER_VOICES
    return np.asarray(table[ctx.ic_now])


def vertical_consonance(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """+1 / -1 at every step where both voices sound: what the listener hears, step by step.

    The onset-only :func:`consonance` pays per struck note, so a policy let loose re-strikes over a held
    melody note to collect it (issue 8: 1.8x Bach's notes); here a held consonance earns the same as a
    re-struck one and a held clash costs at every step it is heard.
    """
    both = (ctx.agent_pitch != NO_PITCH) & (ctx.perf_pitch != NO_PITCH)
    ok = _consonant(ctx, cfg)
    return _bonus(both & ok) + _penalty(both & ~ok)


def change_consonance(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """+1 / -1 where the performer strikes a new note and the agent sounds: the test of anticipation.

    The soprano changes pitch at 19 % of steps; where it does, the agent's note was chosen before the new
    one was heard (anticipate mode), so this is the term that rewards predicting the melody.
    """
    judged = ctx.perf_onset & (ctx.agent_pitch != NO_PITCH) & (ctx.perf_pitch != NO_PITCH)
    ok = _consonant(ctx, cfg)
    return _bonus(judged & ok) + _penalty(judged & ~ok)


def density(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """Hold the note count to the corpus's range: -1 for an onset past ``max_notes_per_bar`` in the
    trailing bar; at a bar's last step, -1 per note short of ``min_notes_per_bar``.

    A reward that pays per note buys notes (issue 8); this bounds what note-spam can buy.
    """
    over = _penalty(ctx.agent_onset & (ctx.bar_onsets > cfg.max_notes_per_bar))
    bar_end = ctx.position == ctx.grid.steps_per_bar - 1
    short = np.maximum(cfg.min_notes_per_bar - ctx.bar_onsets, 0).astype(np.float32)
    return over - np.where(bar_end, short, np.float32(0)).astype(np.float32)


def parallel_imperfect(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for parallel thirds or sixths against the performer (the same imperfect interval again, both
    voices moving the same way).

    Piston, *Harmony* ch. 3 and Fux book II: imperfect consonances may move in parallel, but a run of them
    makes the lower voice a shadow of the upper one; Bach's chorale basses move so 4 % of the time, a
    consonance-rewarded policy 11 % (issue 8's musician review). A small weight trades a little of it away.
    """
    return _penalty(ctx.similar & ~_perfect(ctx.ic_now) & (ctx.ic_now == ctx.ic_prev))


def independent_onset(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """+1 for an agent onset while the performer sounds on without a new note: the bass fills in.

    Piston ch. 13 (harmonic rhythm independent of the melody's); a follow policy rewarded for consonance
    only moves when the melody does (issue 8's musician review: 13 % of its moves vs Bach's 39 %). It pays
    per note, so the density term bounds it.
    """
    return _bonus(ctx.agent_onset & ~ctx.perf_onset & (ctx.perf_pitch != NO_PITCH))


def offbeat(ctx: StepContext, cfg: RewardConfig) -> FloatArray:
    """-1 for an onset off the beat: with a small weight it calibrates the off-beat share to the corpus's."""
    return _penalty(ctx.agent_onset & (ctx.position % ctx.grid.steps_per_beat != 0))


TermFn = Callable[[StepContext, RewardConfig], FloatArray]
TERMS: dict[str, TermFn] = {
    "consonance": consonance,
    "in_key": in_key,
    "stepwise": stepwise,
    "large_leap": large_leap,
    "leap_resolution": leap_resolution,
    "consecutive_leaps": consecutive_leaps,
    "parallel_perfect": parallel_perfect,
    "hidden_perfect": hidden_perfect,
    "contrary_motion": contrary_motion,
    "repetition": repetition,
    "on_beat": on_beat,
    "sync": sync,
    "weak_onset": weak_onset,
    "silent_bar": silent_bar,
    "long_note": long_note,
    "range": range_,
    "voice_crossing": voice_crossing,
    "vertical_consonance": vertical_consonance,
    "change_consonance": change_consonance,
    "density": density,
    "offbeat": offbeat,
    "parallel_imperfect": parallel_imperfect,
    "independent_onset": independent_onset,
}
"""The rule-based terms by name, in reporting order (names match :class:`RewardConfig` fields)."""

assert set(TERMS) <= {f.name for f in fields(RewardConfig)}
