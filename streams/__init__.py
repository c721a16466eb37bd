"""Thin wiring: the Faust app, topics, agents, the CLI. Logic lives in processors/."""
