"""Adapters: the only code that reads the environment, opens sockets or holds keys.

Configuration, the Temporal connection, the payload codec and its server, and the
policy-file loader. Never imported from workflow code.
"""
