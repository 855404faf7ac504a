"""The programs: ``serve`` (the server wires engine and I/O), ``demo``, ``bench``, ``ports``, the monitor."""
