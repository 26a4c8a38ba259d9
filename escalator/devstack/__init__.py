"""The local dev stack behind `escalator up` (`make run`): the Temporal dev server,
a mail catcher and a worker on one machine. Needs the `devstack` extra."""
