"""The hot path: the engine thread, the state it owns, its clocks, the policy runner and its counters."""
