"""The live desk map of seed 000: see docs/desks.md."""
