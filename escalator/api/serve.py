"""Run the API with uvicorn: load and check the policies, then serve.

Every policy file in the directory is loaded and validated before the API
listens, so a broken policy is a one-line error at start-up, never a 500 later.
A policy is named by its file name without `.yaml`: `policies/default.yaml` is
`default`.

`ESCALATOR_API_RATE` sets the rate limit per token in this process:
`REQUESTS_PER_SECOND[,BURST]` (default `20,40`) or `off`; a bad value is a one-line
error at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path

from escalator.adapters.policy_files import load_policy
from escalator.domain.errors import InvalidInput
from escalator.domain.policy import Policy


def load_policies(directory: Path) -> dict[str, Policy]:
    if not directory.is_dir():
        raise InvalidInput(f"--policies: {directory} is not a directory of policy files")
    found = {path.stem: load_policy(path) for path in sorted(directory.glob("*.yaml"))}
    if not found:
        raise InvalidInput(f"--policies: {directory} holds no .yaml policy files")
    return found


async def serve(*, host: str, port: int, policies: dict[str, Policy], tokens, connect) -> None:
    import uvicorn

    from escalator.api.app import create_app
    from escalator.api.rate_limit import rate_from_env

    rate = rate_from_env(os.environ)  # before listening: a bad value is a one-line error
    app = create_app(connect, tokens, policies, rate=rate)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    await uvicorn.Server(config).serve()
