"""The HTTP API (`escalator api`): escalator/api/app.py."""
