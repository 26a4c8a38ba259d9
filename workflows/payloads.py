"""Decoding what arrives at a case: its input, and the payload of each message.

The workflow decodes every payload itself rather than leaving it to the SDK. An
input the SDK cannot decode fails the workflow *task*, which Temporal retries
forever, and a signal it cannot decode is dropped or wedges the case. Decoded
here, each bad payload is a one-line reason that names the field.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from escalator.domain.errors import describe_validation_error
from escalator.domain.models import CaseInput
from escalator.domain.names import ACTION_REFUSED
from escalator.domain.payload_refusal import refusal

_INVALID_INPUT_CHARS = 1000


class InvalidInput(Exception):
    """The workflow's input is not a case; the text names the field."""


class Malformed(Exception):
    """A message whose payload does not fit its model; the text names the field."""


def decode_case_input(payloads: tuple) -> CaseInput:
    """The input as a CaseInput, or InvalidInput with a one-line reason.

    The workflow decodes its own input. Left to the SDK, an input that does not
    validate fails the workflow *task*, which Temporal retries forever: the case
    stays RUNNING and nobody is told. Decoded here, it fails the workflow at once
    with `InvalidCaseInput`, whoever started it (a raw client, the temporal CLI).
    """
    if len(payloads) != 1:
        raise InvalidInput(f"case: expected one argument (a CaseInput), got {len(payloads)}")
    refused = refusal(payloads[0])  # plaintext, with ESCALATOR_REQUIRE_ENCRYPTION on
    if refused is not None:
        raise InvalidInput(f"case: {refused}")
    try:
        return CaseInput.model_validate_json(json.dumps(payloads[0]))
    except (TypeError, ValueError) as error:
        errors = getattr(error, "errors", None)
        if callable(errors):  # pydantic's ValidationError is a ValueError
            # Shortened: a message may quote the value, and the value may be huge.
            message = describe_validation_error(error, prefix="case")  # type: ignore[arg-type]
            raise InvalidInput(shorten(message, _INVALID_INPUT_CHARS)) from None
        raise InvalidInput(f"case: not JSON ({type(error).__name__})") from None


def parse_message(model: type, value: object) -> Any:
    # Validated as JSON, which is what arrived: the messages then read the same as
    # at the edges ("actor: Input should be an object"), whoever sent the payload.
    refused = refusal(value)  # plaintext, with ESCALATOR_REQUIRE_ENCRYPTION on
    if refused is not None:
        raise Malformed(refused)
    try:
        return model.model_validate_json(json.dumps(value))  # type: ignore[attr-defined]
    except (TypeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        raise Malformed(one_line_error(error)) from None


def decode_update(action: str, model: type, payload: RawValue) -> Any:
    """An update's argument, decoded. In the validator a malformed one is rejected
    with a one-line reason before anything is written to history."""
    try:
        try:
            value = workflow.payload_converter().from_payload(payload.payload)
        except Exception as error:  # not even JSON (a foreign client's encoding)
            raise Malformed(one_line_error(error)) from None
        return parse_message(model, value)
    except Malformed as malformed:
        raise ApplicationError(
            f"rejected: {action}: malformed payload: {malformed}",
            type=ACTION_REFUSED,
            non_retryable=True,
        ) from None


def user_in(data: object) -> str | None:
    """Who a malformed payload says sent it, if that much of it is readable."""
    actor = data.get("actor") if isinstance(data, dict) else None
    user = actor.get("user") if isinstance(actor, dict) else None
    return user if isinstance(user, str) else None


def one_line_error(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):  # pydantic: name the field, as at the edges
        first = errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        message = f"{where}: {first['msg']}" if where else first["msg"]
    else:
        message = f"{type(error).__name__}: {error}"
    return shorten(" ".join(message.split()), 300)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
