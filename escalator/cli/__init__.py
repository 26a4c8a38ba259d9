"""The `escalator` command line: an operator's tool with namespace access."""
