"""The wires: OSC and MIDI (ALSA/JACK) in and out. Input threads decode and enqueue; they never play."""
