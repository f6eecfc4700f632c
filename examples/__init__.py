"""Runnable examples; see examples/README.md for the order to read them in."""
