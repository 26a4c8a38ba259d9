"""What a refused plaintext payload decodes to, when ESCALATOR_REQUIRE_ENCRYPTION is on.

With encryption required, the codec never hands a plaintext payload on: it replaces
it with this marker (and copies nothing of the original). Raising in the codec instead
would fail the whole workflow task, which Temporal retries for ever, or, worse, let one
plaintext signal fail a case. The marker is an ordinary JSON object, so the workflow's
own decoding refuses it like any malformed input: a case whose input is the marker
fails at once with InvalidCaseInput, a signal is recorded as refused, an update is
rejected. `refusal(value)` names the reason, for code that wants to say it exactly.
"""

from __future__ import annotations

# The key reads as the reason, since validation messages name unknown fields: even
# decoding that does not call `refusal` says "...ESCALATOR_REQUIRE_ENCRYPTION_is_on...".
MARKER_KEY = "payload_not_encrypted__ESCALATOR_REQUIRE_ENCRYPTION_is_on"
REASON = "payload not encrypted; ESCALATOR_REQUIRE_ENCRYPTION is on"
# In the marker payload's metadata too, for anyone looking at raw payloads.
METADATA_KEY = "escalator-refused"


def marker() -> dict[str, str]:
    """The JSON value a refused payload decodes to."""
    return {MARKER_KEY: REASON}


def refusal(value: object) -> str | None:
    """The reason if `value` is the marker of a refused payload, else None."""
    if isinstance(value, dict) and set(value) == {MARKER_KEY}:
        reason = value[MARKER_KEY]
        return reason if isinstance(reason, str) else REASON
    return None
