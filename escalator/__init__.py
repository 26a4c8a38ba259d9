"""Escalator: durable escalation workflows on Temporal (see the README's layout)."""
