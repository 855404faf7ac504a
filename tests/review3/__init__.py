"""Hostile review 3 (a musician on stage) of ``serve --start-on-note``: the performer's first note-on starts
the internal/OSC transport as the downbeat. Each test reproduces, through a real ``liveagent serve`` and
real UDP, something a musician hears go wrong; the measured numbers are in each docstring."""
