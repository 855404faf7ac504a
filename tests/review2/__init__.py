"""Hostile review 2 (keyboard player + timing engineer) of the live engine's last changes: the performer
line (a new key wins over an older one still down only within a fifth above it), the chord grace from the
latest note with no spin before a follow decision, and the re-strike past max_note_steps. Each test began
as the reproduction of a regression; they now guard the fixes (real serve, real UDP where timing matters).
The before/after comparisons against the previous commit were measured once and are in the review report."""
