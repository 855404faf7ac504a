"""Hostile review 2 (keyboard player + timing engineer) of the live engine's last changes: the performer
line of the newest notes, the chord grace from the latest note with no spin before a follow decision, and
the re-strike past max_note_steps. Failing tests are the reproductions of regressions; the ``*before*``
tests print the same measurement on the commit before the changes (``LIVEAGENT_OLD_TREE=/tmp/old`` after
``git worktree add /tmp/old a66dbac``) and are skipped without it."""
