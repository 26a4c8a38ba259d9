"""The processes that host cases: the worker that runs workflows and activities."""
