"""AI activities: `assess_case` and `draft_for_audience`, one Messages API call each.

Temporal owns the retries (see ASSESSMENT_* in escalator/domain/assessment.py), so the SDK's
own retries are off (`max_retries=0`) and its timeout is short: one attempt is one
HTTP request, and every failure is classified here:

  - `AssessmentRejected` (non-retryable): the API refuses this request and will refuse
    it again (400, 401, 403, 404 and other 4xx): a bad key, no access to the model, a
    request it cannot take.
  - `AssessmentUnavailable` (retryable, benign): 429, 408, 409, 5xx/529, timeouts and
    connection failures. A 429's Retry-After becomes the next retry delay (capped).
  - `MalformedAssessment` / `MalformedDraft` (retryable): the model answered, but not
    with a valid tool call or any text; another sample usually does.

`AssessmentActivities(settings)` holds both, configured by the `ai` group of an
`EscalatorSettings` (loaded once by the worker); they read no environment themselves.
The module-level `assess_case` and `draft_for_audience` are the same activities
configured from the environment at each call.

With no `ANTHROPIC_API_KEY`, both activities answer offline from templates, so a
worker without a key still gives every tier a (clearly labelled) assessment.

The API key is never logged and never appears in an error message.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import anthropic
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from escalator.adapters.settings import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT_SECONDS,
    AiSettings,
    EscalatorSettings,
)
from escalator.domain.assessment import (
    ASSESSMENT_TOOL,
    ASSESSMENT_TOOL_CHOICE,
    TOOL_NAME,
    Assessment,
    AssessmentRequest,
    AssessmentResult,
    Draft,
    DraftRequest,
    build_draft_messages,
    build_messages,
    email_frame,
    offline_assessment,
    offline_draft,
    redact_terms,
)
from escalator.domain.errors import InvalidInput
from escalator.domain.names import ASSESS_CASE, ASSESSMENT_REJECTED, DRAFT_FOR_AUDIENCE

REJECTED = ASSESSMENT_REJECTED
UNAVAILABLE = "AssessmentUnavailable"
MALFORMED = "MalformedAssessment"
MALFORMED_DRAFT = "MalformedDraft"
CONFIG = "AssessmentConfigError"

# DEFAULT_MODEL (ESCALATOR_AI_MODEL overrides) and DEFAULT_TIMEOUT_SECONDS (per attempt,
# below ASSESSMENT_ATTEMPT_TIMEOUT; ESCALATOR_AI_TIMEOUT overrides) live with the settings.
ASSESSMENT_MAX_TOKENS = 1500
DRAFT_MAX_TOKENS = 600
DRAFT_MAX_CHARS = 4000
# A 429's Retry-After is honoured, but within the 5-minute give-up window.
MAX_RETRY_AFTER = timedelta(seconds=60)


class AssessmentActivities:
    """`assess_case` and `draft_for_audience`, configured by `settings` (its `ai` group).
    Without an API key they answer offline."""

    def __init__(self, settings: EscalatorSettings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"AssessmentActivities(ai={self.settings.ai!r})"

    @activity.defn(name=ASSESS_CASE)
    async def assess_case(self, request: AssessmentRequest) -> AssessmentResult:
        return await _assess_case(request, self.settings.ai)

    @activity.defn(name=DRAFT_FOR_AUDIENCE)
    async def draft_for_audience(self, request: DraftRequest) -> Draft:
        return await _draft_for_audience(request, self.settings.ai)


def _ai_from_env(what: str) -> EscalatorSettings:
    """Read at call time, so a test (or a re-configured process) sees new values."""
    try:
        ai = AiSettings.from_env()
    except InvalidInput as error:
        # A worker misconfiguration, not the case's fault: stay retryable so the call
        # goes through once the worker restarts with a fixed environment.
        raise ApplicationError(f"{what}: {error}", type=CONFIG) from None
    return EscalatorSettings.defaults(ai=ai)


@activity.defn(name=ASSESS_CASE)
async def assess_case(request: AssessmentRequest) -> AssessmentResult:
    """`assess_case` with ANTHROPIC_* and ESCALATOR_AI_* read from the environment."""
    settings = _ai_from_env(f"assessment of case {request.case_id}")
    return await AssessmentActivities(settings).assess_case(request)


@activity.defn(name=DRAFT_FOR_AUDIENCE)
async def draft_for_audience(request: DraftRequest) -> Draft:
    """`draft_for_audience` with ANTHROPIC_* and ESCALATOR_AI_* read from the environment."""
    settings = _ai_from_env(f"{request.audience} draft for case {request.case_id}")
    return await AssessmentActivities(settings).draft_for_audience(request)


# -- assess_case -----------------------------------------------------------------------


async def _assess_case(request: AssessmentRequest, settings: AiSettings) -> AssessmentResult:
    what = f"assessment of case {request.case_id}"
    if settings.offline:
        activity.logger.info("%s: no ANTHROPIC_API_KEY, used the offline assessor", what)
        return offline_assessment(request).model_copy(update={"generated_at": _now()})

    system, messages, truncated = build_messages(request)
    response = await _create_message(
        settings,
        what,
        max_tokens=ASSESSMENT_MAX_TOKENS,
        system=system,
        messages=messages,
        tools=[ASSESSMENT_TOOL],
        tool_choice=ASSESSMENT_TOOL_CHOICE,
    )
    assessment = _parse_assessment(response, what)
    activity.logger.info(
        "%s by %s: confidence %s%s%s",
        what,
        response.model,
        assessment.confidence,
        _usage(response),
        ", from a shortened case record" if truncated else "",
    )
    return AssessmentResult(
        **assessment.model_dump(),
        source="model",
        model=response.model,
        generated_at=_now(),
        input_truncated=truncated,
    )


def _parse_assessment(response, what: str) -> Assessment:
    call = next((b for b in response.content if b.type == "tool_use" and b.name == TOOL_NAME), None)
    if call is None:
        raise _malformed(
            MALFORMED,
            f"{what}: the model answered without calling {TOOL_NAME} "
            f"(stop_reason {response.stop_reason})",
        )
    try:
        return Assessment.model_validate(call.input)
    except ValidationError as error:
        # Locations and messages only: the input values echo case text.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors()[:3]
        )
        raise _malformed(
            MALFORMED,
            f"{what}: the {TOOL_NAME} call is invalid ({error.error_count()} problems): {problems}",
        ) from None


# -- draft_for_audience ----------------------------------------------------------------


async def _draft_for_audience(request: DraftRequest, settings: AiSettings) -> Draft:
    what = f"{request.audience} draft for case {request.case_id}"
    if settings.offline:
        activity.logger.info("%s: no ANTHROPIC_API_KEY, used the offline templates", what)
        return offline_draft(request)

    system, messages = build_draft_messages(request)
    response = await _create_message(
        settings, what, max_tokens=DRAFT_MAX_TOKENS, system=system, messages=messages
    )
    text = "\n".join(b.text for b in response.content if b.type == "text").strip()
    if not text:
        raise _malformed(
            MALFORMED_DRAFT,
            f"{what}: the model answered with no text (stop_reason {response.stop_reason})",
        )
    text = text[:DRAFT_MAX_CHARS]
    if request.audience != "ticket_notes":
        # The prompt asks for no internal names; this makes sure of it.
        text = redact_terms(text, request.internal_terms)
    if request.audience == "email_draft":
        # The model wrote the body only: the customer's name never left the worker.
        text = email_frame(text, request.customer_name)
    activity.logger.info("%s by %s%s", what, response.model, _usage(response))
    return Draft(audience=request.audience, text=text, source="model", model=response.model)


# -- the one API call and its failures ---------------------------------------------------


# One client per settings and event loop, reused across calls: building one costs
# about 20 ms of CPU (an SSL context) on the worker's event loop, which a burst of
# escalations would pay hundreds of times. The worker closes them on shutdown.
_clients: dict[tuple[int, AiSettings], anthropic.AsyncAnthropic] = {}


def _client(settings: AiSettings) -> anthropic.AsyncAnthropic:
    key = (id(asyncio.get_running_loop()), settings)
    client = _clients.get(key)
    if client is None:
        timeout = anthropic.Timeout(
            settings.timeout, connect=min(settings.connect_timeout, settings.timeout)
        )
        client = _clients[key] = anthropic.AsyncAnthropic(
            api_key=_key(settings),
            base_url=settings.base_url,
            max_retries=0,  # Temporal owns the retries
            timeout=timeout,
        )
    return client


async def close_clients() -> None:
    """Close the clients this event loop made (the worker calls it when it stops)."""
    loop = id(asyncio.get_running_loop())
    for key in [key for key in _clients if key[0] == loop]:
        await _clients.pop(key).close()


async def _create_message(settings: AiSettings, what: str, **params):
    """Exactly one HTTP request (`max_retries=0`) on the shared client."""
    try:
        return await _client(settings).messages.create(model=settings.model, **params)
    except anthropic.APIStatusError as error:
        raise _status_error(what, error, settings) from None
    except anthropic.APITimeoutError:
        raise _unavailable(
            f"{what}: no answer from the Anthropic API within {settings.timeout:g} s", settings
        ) from None
    except anthropic.APIConnectionError as error:
        cause = type(error.__cause__).__name__ if error.__cause__ else "connection error"
        raise _unavailable(
            f"{what}: could not reach the Anthropic API ({cause})", settings
        ) from None
    except anthropic.APIError as error:
        # e.g. a response the SDK could not read: likely a proxy or a blip.
        raise _unavailable(
            f"{what}: unusable answer from the Anthropic API: {type(error).__name__}", settings
        ) from None


def _status_error(what: str, error: anthropic.APIStatusError, settings: AiSettings):
    status = error.status_code
    kind, message = _error_body(error.body)
    detail = f"{what}: Anthropic API answered {status}"
    if kind:
        detail += f" {kind}"
    if message:
        detail += f": {message}"
    # The same statuses the SDK itself would retry; everything else is this request's fault.
    if status == 429:
        return _unavailable(detail, settings, retry_after=_retry_after(error.response.headers))
    if status in (408, 409) or status >= 500:
        return _unavailable(detail, settings)
    activity.logger.error("%s (not retried)", _redact(detail, settings))
    return ApplicationError(_redact(detail, settings), type=REJECTED, non_retryable=True)


def _error_body(body: object) -> tuple[str | None, str | None]:
    """`(error.type, error.message)` from the API's error JSON, if it has that shape."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    return kind, _one_line(message)[:300] if message else None


def _retry_after(headers) -> timedelta | None:
    # `retry-after-ms` is Anthropic's precise variant; `retry-after` is in seconds.
    for name, unit in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name, "")) * unit
        except ValueError:
            continue
        if seconds >= 0:
            return min(timedelta(seconds=seconds), MAX_RETRY_AFTER)
    return None


def _unavailable(
    message: str, settings: AiSettings, *, retry_after: timedelta | None = None
) -> ApplicationError:
    # Expected during outages and rate limits: one warning line per attempt, and
    # BENIGN so the SDK does not log a traceback for each one.
    message = _redact(message, settings)
    activity.logger.warning("attempt %d failed, will retry: %s", activity.info().attempt, message)
    return ApplicationError(
        message,
        type=UNAVAILABLE,
        next_retry_delay=retry_after,
        category=ApplicationErrorCategory.BENIGN,
    )


def _malformed(kind: str, message: str) -> ApplicationError:
    # Models occasionally answer off-schema; the retry usually fixes it, so this is
    # expected too: one warning line, no traceback.
    activity.logger.warning("attempt %d failed, will retry: %s", activity.info().attempt, message)
    return ApplicationError(message, type=kind, category=ApplicationErrorCategory.BENIGN)


def _redact(text: str, settings: AiSettings) -> str:
    # Belt and braces: nothing formats the key, but API messages are not ours to vouch
    # for. Real keys are long; a toy key such as "k" would only garble the message.
    key = _key(settings)
    if len(key) < 8:
        return text
    return text.replace(key, "***")


def _key(settings: AiSettings) -> str:
    return settings.api_key.get_secret_value() if settings.api_key else ""


def _usage(response) -> str:
    usage = getattr(response, "usage", None)
    if usage is None:
        return ""
    return f" ({usage.input_tokens} input / {usage.output_tokens} output tokens)"


def _now() -> datetime:
    return datetime.now(UTC)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


ALL_AI_ACTIVITIES = [assess_case, draft_for_audience]

__all__ = [
    "ALL_AI_ACTIVITIES",
    "CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT_SECONDS",
    "AssessmentActivities",
    "assess_case",
    "close_clients",
    "draft_for_audience",
]
