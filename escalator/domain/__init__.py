"""The pure domain: a case's life, policies, SLA clocks, rules, wording.

Safe to import from workflow code: nothing here reads a clock or the environment,
opens a socket or a file, or holds a key. Tested without Temporal (`make test-unit`).
"""
