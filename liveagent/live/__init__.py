"""The performing world: clocks, MIDI and OSC I/O, the ONNX policy runner, the engine. Never imports torch."""
