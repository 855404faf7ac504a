"""Review 4: a hostile network against ``serve --start-on-note`` / ``--follow-tempo`` (failing tests)."""
