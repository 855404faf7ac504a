"""Small data files shipped in the package (demo melodies)."""
