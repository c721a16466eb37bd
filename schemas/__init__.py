"""Records that travel between stages, and how raw source values are read."""
