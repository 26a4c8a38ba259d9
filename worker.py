"""Run an Escalator worker. Configured by environment variables (TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, ESCALATOR_TASK_QUEUE, SMTP_*, ANTHROPIC_API_KEY, ESCALATOR_*; see
README.md) and optionally a Temporal client config profile (TEMPORAL_CONFIG_FILE,
TEMPORAL_PROFILE), all read once here into `EscalatorSettings`."""

import asyncio
import logging
import os
import sys

from escalator.adapters.settings import EscalatorSettings
from escalator.domain.errors import EscalatorError
from escalator.runtime.worker import run_worker


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = EscalatorSettings.from_env()  # a bad value fails here, in one line
        asyncio.run(run_worker(settings))
    except EscalatorError as error:
        print(f"escalator worker: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # The workers have shut down; skip interpreter finalisation, where the SDK's
    # runtime threads can abort the process (sdk-python #300) and turn a clean stop
    # into exit code 134 with a "Fatal Python error" on stderr.
    os._exit(code)
