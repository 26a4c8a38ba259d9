"""One way to connect to Temporal, used by the worker, the starter API and the CLI."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from escalator.adapters.codec import data_converter
from escalator.adapters.settings import TemporalSettings
from escalator.domain.errors import EscalatorError


class TemporalUnavailable(EscalatorError):
    """The Temporal service could not be reached."""


async def connect(
    settings: TemporalSettings | None = None, *, runtime: Runtime | None = None
) -> Client:
    """A client for `settings` (default: TemporalSettings.from_env()): the address,
    namespace, API key, TLS or mTLS and gRPC metadata of the envconfig profile, with
    TEMPORAL_ADDRESS and friends on top. `runtime` (default: the SDK's) is the one
    workers on this client report their metrics to (escalator/runtime/worker.py)."""
    settings = settings or TemporalSettings.from_env()
    converter = data_converter()  # a bad ESCALATOR_ENCRYPTION_KEY fails here, before I/O
    try:
        return await Client.connect(
            settings.address,
            namespace=settings.namespace,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            tls=settings.connect_tls(),
            rpc_metadata=settings.rpc_metadata,
            # Every client and worker uses the pydantic converter, so our models
            # (datetimes, timedeltas, tuples) round-trip exactly; with
            # ESCALATOR_ENCRYPTION_KEY set, payloads are AES-GCM encrypted too.
            data_converter=converter,
            runtime=runtime,
        )
    except RuntimeError as error:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.address} (namespace {settings.namespace}): "
            f"{_short_cause(str(error))}; start it with `escalator up` or set TEMPORAL_ADDRESS"
        ) from None


def _short_cause(text: str) -> str:
    # The transport error is a nested Rust debug string; the first known phrase says it all.
    for phrase in (
        "Connection refused",
        "timed out",
        "dns error",
        "certificate",
        "Unauthenticated",
    ):
        if phrase.lower() in text.lower():
            return phrase.lower()
    first = text.splitlines()[0] if text else "unknown error"
    return first if len(first) <= 120 else first[:119] + "…"
