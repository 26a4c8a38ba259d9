"""Where the Temporal service is, read from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TASK_QUEUE = "escalations"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class TemporalSettings:
    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    api_key: str | None = None  # Temporal Cloud API key; implies TLS
    tls: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TemporalSettings:
        api_key = environ.get("TEMPORAL_API_KEY") or None
        return cls(
            address=environ.get("TEMPORAL_ADDRESS") or cls.address,
            namespace=environ.get("TEMPORAL_NAMESPACE") or cls.namespace,
            task_queue=environ.get("ESCALATOR_TASK_QUEUE") or cls.task_queue,
            api_key=api_key,
            tls=api_key is not None or environ.get("TEMPORAL_TLS", "").lower() in _TRUE,
        )

    def __repr__(self) -> str:  # never print the API key
        key = "set" if self.api_key else "unset"
        return (
            f"TemporalSettings(address={self.address!r}, namespace={self.namespace!r}, "
            f"task_queue={self.task_queue!r}, tls={self.tls}, api_key={key})"
        )
