"""One way to connect to Temporal, used by the worker, the starter API and the CLI."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from escalator.errors import EscalatorError
from escalator.settings import TemporalSettings


class TemporalUnavailable(EscalatorError):
    """The Temporal service could not be reached."""


async def connect(settings: TemporalSettings) -> Client:
    try:
        return await Client.connect(
            settings.address,
            namespace=settings.namespace,
            api_key=settings.api_key,
            tls=settings.tls,
            # Every client and worker uses the pydantic converter, so our models
            # (datetimes, timedeltas, tuples) round-trip exactly.
            data_converter=pydantic_data_converter,
        )
    except RuntimeError as error:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.address} (namespace {settings.namespace}): "
            f"{str(error).splitlines()[0]}; start it with `escalator up` or set TEMPORAL_ADDRESS"
        ) from None
