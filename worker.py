"""Run an Escalator worker. Configured by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
ESCALATOR_TASK_QUEUE and the SMTP_* variables (see README.md)."""

import asyncio
import logging
import sys

from escalator.errors import EscalatorError
from escalator.worker_runtime import run_worker


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(run_worker())
    except EscalatorError as error:
        print(f"escalator worker: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
