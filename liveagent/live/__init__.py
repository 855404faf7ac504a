"""The performing world (never imports torch or the training code). Three rooms:

- :mod:`liveagent.live.engine`: the hot path. One thread owns the state (:mod:`~.engine.state`) and runs
  the loop (:mod:`~.engine.loop`) on a clock's grid (:mod:`~.engine.clocks`): it folds the performer's
  notes into the policy's view (:mod:`~.engine.performer`, :mod:`~.engine.follow`), runs the ONNX policy
  (:mod:`~.engine.policy`, :mod:`~.engine.policy_view`), plays and releases notes (:mod:`~.engine.notes`),
  counts (:mod:`~.engine.stats`) and records (:mod:`~.engine.recording`).
- :mod:`liveagent.live.io`: the wires. OSC (:mod:`~.io.osc`), MIDI over ALSA or JACK (:mod:`~.io.midi`,
  :mod:`~.io.midi_clock_out`, :mod:`~.io.device_clock`), the dummy JACK server for tests and benches
  (:mod:`~.io.jack`), and an OSC receiver that timestamps what we send (:mod:`~.io.receiver`). Input
  threads only decode and enqueue immutable events (:mod:`liveagent.live.events`).
- :mod:`liveagent.live.commands`: the programs around them: ``serve`` (:mod:`~.commands.serve`,
  :mod:`~.commands.server`), ``demo``, ``bench``, ``ports``, the terminal monitor.

Arrows point one way: commands -> io and engine; io -> events; engine -> events.
"""
