"""Run the API with uvicorn: load and check the policies, then serve.

Every policy file in the directory is loaded and validated before the API
listens, so a broken policy is a one-line error at start-up, never a 500 later.
A policy is named by its file name without `.yaml`: `policies/default.yaml` is
`default`.
"""

from __future__ import annotations

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

    app = create_app(connect, tokens, policies)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    await uvicorn.Server(config).serve()
