"""The shared music core (numpy only): tokens and grid, theory, MIDI files, corpora, features, sampling."""
