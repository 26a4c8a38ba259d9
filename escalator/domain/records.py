"""What a case records: its notes, escalations, timeline, holds and deadlines.

The lowest wire models, shared by the case models and the AI assessment shapes,
so neither has to import the other.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from escalator.domain.limits import MAX_NOTE_ITEM_CHARS, MAX_REASON_CHARS

# Case ids become workflow ids (`case-<id>`) and appear in URLs and mail headers.
CASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# A category or customer tier: a lowercase label such as `sso` or `enterprise`.
LABEL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


def _label(value: str) -> str:
    if not re.fullmatch(LABEL_PATTERN, value):
        raise ValueError(
            "must be a short lowercase label such as sso or enterprise "
            "(a-z, 0-9, - and _, at most 40 characters)"
        )
    return value


Label = Annotated[str, AfterValidator(_label)]

Role = Literal["viewer", "engineer", "admin", "owner", "customer"]
# Where a case is in its handling; `CaseState` (escalator/domain/models.py) is all of it.
CasePhase = Literal["open", "claimed", "resolved"]

ShortText = Annotated[str, Field(min_length=1, max_length=MAX_NOTE_ITEM_CHARS)]


class Model(BaseModel):
    """Every wire model: unknown fields are errors, and values never change. pydantic's
    own text of an error leaves the input out: it may be case text or a secret, and
    Escalator's one-line messages (escalator/domain/errors.py) never need it."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Actor(Model):
    user: str = Field(min_length=1, max_length=200)
    role: Role
    account: str = Field(default="default", pattern=ACCOUNT_PATTERN)


class EscalationNote(Model):
    """What the next tier needs so it never asks the customer again."""

    reason: str = Field(default="", max_length=MAX_REASON_CHARS)
    steps_taken: tuple[ShortText, ...] = ()
    symptoms: tuple[ShortText, ...] = ()
    customer_impact: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
    suggested_next_step: str | None = Field(default=None, max_length=MAX_REASON_CHARS)


class TimelineEvent(Model):
    at: datetime
    kind: str
    detail: str
    actor: str | None = None


class Escalation(Model):
    """One tier change, with the note that travels to the receiving tier."""

    from_level: int
    to_level: int
    at: datetime
    by: str = Field(description="The user who escalated, or `system` for an SLA breach.")
    automatic: bool
    note: EscalationNote


class CaseNote(Model):
    at: datetime
    author: str
    text: str


class Deadline(Model):
    """The next moment the case acts on its own, and what it does then."""

    at: datetime
    kind: Literal["warning", "breach", "repeat", "stale", "release", "resume"]
    clock: Literal["first_response", "resolution", "activity", "hold"]
    tier_level: int
    label: str = Field(description="e.g. `L1 first-response deadline`.")
    consequence: str = Field(description="e.g. `escalate to L2 Specialist Support`.")


class HoldState(Model):
    since: datetime
    reason: str
    by: str
    until: datetime | None = None


class TierRef(Model):
    level: int
    name: str
    team: str

    @property
    def label(self) -> str:
        return f"L{self.level} {self.name}"
