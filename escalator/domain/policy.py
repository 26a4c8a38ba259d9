"""Escalation policies: the tiers a case climbs, their SLAs and the severity shortcuts.

A policy is plain data. Each case stores the policy it started with, so editing a
file never changes a running case. Loading YAML lives in `escalator.adapters.policy_files`;
this module only defines the shape and its rules, which apply wherever a policy
comes from (YAML, JSON sent by any Temporal client, or the Python builder).

Rules worth knowing (the same for every source):

- Durations are whole seconds, at least 1 s (`escalator.domain.durations`): `1.5h` is fine,
  `0.5` or `59.5s` is refused, and so is clock notation such as `1:30`, which could
  mean 1 h 30 min or 1 min 30 s. In JSON a duration is written back compactly
  ("1d2h3m4s"), and reads back to exactly the same value.
- `notify` addresses (and `EmailAddress` wherever it is used, e.g. a case's customer)
  are checked with email-validator's syntax rules, without any network look-up:
  exactly one @, a domain with a dot, no spaces, display names, quotes or line breaks.
  The address is kept as written (only surrounding blanks are removed).
- `webhook` must be an absolute http:// or https:// URL with a host, as pydantic's
  HttpUrl reads it, with no blanks or control characters. It stays a plain string,
  exactly as written.
- Booleans are never numbers (`level: true` is an error), unknown keys are errors.
- `channels` names the Slack, PagerDuty and webhook destinations (`Channel`). A
  policy holds only the names of the environment variables with their secrets,
  never a secret: a Slack `url` or a PagerDuty `routing_key` written inline is
  refused. Tiers (`channels: [...]`) and severity overrides (`notification:`) refer
  to channels by name, and an unknown name is an error. A policy without a
  `channels` section keeps `notification` as a label only, as policies did before
  channels existed (their snapshots live on in running cases).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from escalator.domain.business_time import BusinessCalendar
from escalator.domain.durations import format_duration, parse_duration
from escalator.domain.errors import FieldValueError

Severity = Literal["P0", "P1", "P2", "P3", "P4"]
SEVERITIES: tuple[str, ...] = ("P0", "P1", "P2", "P3", "P4")

# A duration field: reads every shape parse_duration knows (whole seconds, at least
# 1 s), and writes the compact form in JSON so the policy snapshot in Temporal's
# history stays readable; the compact form reads back to the same value.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def check_email(value: str) -> str:
    """`value` without surrounding blanks, if it is a well-formed email address.

    Syntax only (email-validator with check_deliverability=False): no DNS, so this is
    safe in workflow code. Anything that could smuggle a header line into a mail
    (CR, LF, commas, angle brackets) is refused. Raises ValueError naming the reason.
    """
    value = value.strip()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"{value!r} is not an email address: {error}") from None
    return value


def _email(value: object) -> object:
    # A number or a list is a type error, reported as such by pydantic's str check.
    return check_email(value) if isinstance(value, str) else value


EmailAddress = Annotated[str, BeforeValidator(_email)]

_HTTP_URL = TypeAdapter(HttpUrl)


def check_webhook_url(value: str) -> str:
    """`value` unchanged if it is an absolute http(s) URL; raises ValueError if not."""
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(
            f"{value!r} is not an http(s) URL: it contains blanks or control characters"
        )
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        raise ValueError(
            f"{value!r} is not an http(s) URL: write it as https://host/path (or http://)"
        )
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError as error:
        reason = error.errors(include_url=False)[0]["msg"]
        raise ValueError(f"{value!r} is not an http(s) URL: {reason}") from None
    return value


WebhookUrl = Annotated[str, AfterValidator(check_webhook_url)]


def _not_a_boolean(kind: str) -> BeforeValidator:
    """pydantic's lax mode reads `true` as 1; in a policy that is always a mistake."""

    def check(value: object) -> object:
        if isinstance(value, bool):
            raise PydanticCustomError(
                f"{kind}_type",
                f"Input should be a valid {kind}, not a boolean ({str(value).lower()})",
            )
        return value

    return BeforeValidator(check)


# An int or float field that refuses booleans (YAML `true`, JSON `true`), but still
# reads numbers written as strings, like pydantic's lax mode. Durations have their
# own parser, which refuses booleans too.
WholeNumber = Annotated[int, _not_a_boolean("integer")]
Number = Annotated[float, _not_a_boolean("number")]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo such as `first_responce` must not silently
    # leave a tier without its SLA.
    model_config = ConfigDict(extra="forbid", frozen=True)


# A channel's name, as tiers and overrides refer to it, e.g. `slack_oncall`.
CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
# An environment variable's name, e.g. `SLACK_ONCALL_URL`.
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")


def _channel_name(value: object) -> object:
    if isinstance(value, str) and CHANNEL_NAME.fullmatch(value) is None:
        raise ValueError(
            f"{shown_name(value)} is not a channel name: use lower-case letters, digits, _ "
            "and -, starting with a letter (at most 40), e.g. slack_oncall"
        )
    return value


# A long run of hex or base64-like characters, or a URL: what a pasted key looks like.
_LOOKS_SECRET = re.compile(
    r"://|[0-9a-fA-F]{20,}|(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{20,}"
)


def shown_name(name: str) -> str:
    """`name` quoted for a message, unless it looks like a pasted URL or key, which a
    message must never repeat."""
    if _LOOKS_SECRET.search(name) or len(name) > 60:
        return "the name given (not repeated: it looks like a URL or a key)"
    return repr(name)


ChannelName = Annotated[str, BeforeValidator(_channel_name)]


# Escalator's own settings (and the prefixes they live under). A channel may not
# name one: a PagerDuty channel sends its variable's value to the endpoint the policy
# names, so `routing_key_env: SMTP_PASSWORD` with a `url` of the author's would hand
# the worker's credentials to whoever wrote the policy. The worker checks again at
# send time (activities/channels.py), against every variable its settings read.
RESERVED_ENV_PREFIXES = ("ESCALATOR_", "TEMPORAL_", "SMTP_", "ANTHROPIC_")
RESERVED_ENV_NAMES = frozenset({"MAIL_FROM"})


def reserved_env_name(name: str) -> bool:
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)


def _env_name(value: object) -> object:
    if isinstance(value, str) and ENV_NAME.fullmatch(value) is None:
        # Never echo the value: it is likely the secret itself, pasted by mistake.
        raise ValueError(
            "must name an environment variable (upper-case letters, digits and _, e.g. "
            "SLACK_ONCALL_URL), not hold the secret; set the variable on the worker"
        )
    if isinstance(value, str) and reserved_env_name(value):
        raise ValueError(
            f"{value} is one of Escalator's own settings (ESCALATOR_*, TEMPORAL_*, SMTP_*, "
            "ANTHROPIC_*, MAIL_FROM), which a channel may not read; give the channel a "
            "variable of its own, e.g. SLACK_ONCALL_URL"
        )
    return value


EnvName = Annotated[str, BeforeValidator(_env_name)]

ChannelKind = Literal["slack", "pagerduty", "webhook"]
# The settings each kind takes; every other one is refused with the reason.
_CHANNEL_SETTINGS: dict[str, tuple[str, ...]] = {
    "slack": ("url_env",),
    "pagerduty": ("routing_key_env", "url"),
    "webhook": ("url", "url_env"),
}
_INLINE_SECRETS = {
    ("slack", "url"): "url: a Slack incoming-webhook URL is a secret, so it never goes in "
    "a policy; put it in an environment variable on the worker and name that with url_env",
    ("pagerduty", "routing_key"): "routing_key: a PagerDuty routing key is a secret, so it "
    "never goes in a policy; put it in an environment variable on the worker and name "
    "that with routing_key_env",
}


class Channel(_Strict):
    """Where a tier's notifications also go: a Slack incoming webhook, a PagerDuty
    service (Events API v2), or a generic JSON webhook. Secrets stay in the worker's
    environment; the policy names the variables."""

    # A refusal must never repeat the value: it may be the secret, pasted by mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    kind: ChannelKind
    url_env: EnvName | None = Field(
        default=None, description="Environment variable holding the URL (Slack, webhook)."
    )
    routing_key_env: EnvName | None = Field(
        default=None, description="Environment variable holding the routing key (PagerDuty)."
    )
    url: WebhookUrl | None = Field(
        default=None,
        description="PagerDuty: the events endpoint (default PagerDuty's); webhook: the URL.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secret_inline(cls, data: object) -> object:
        kind = data.get("kind") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(kind, str):
            return data  # pydantic reports the shape or the kind
        for key, value in data.items():
            reason = _INLINE_SECRETS.get((kind, key))
            if reason is not None and value is not None:  # a snapshot writes url: null
                raise FieldValueError(reason, at=(key,))
        return data

    @model_validator(mode="after")
    def _settings_fit_the_kind(self) -> Channel:
        allowed = _CHANNEL_SETTINGS[self.kind]
        for key in ("url_env", "routing_key_env", "url"):
            if getattr(self, key) is not None and key not in allowed:
                raise FieldValueError(
                    f"a {self.kind} channel does not take {key}; it takes {' or '.join(allowed)}",
                    at=(key,),
                )
        needed = {"slack": "url_env", "pagerduty": "routing_key_env"}.get(self.kind)
        if needed is not None and getattr(self, needed) is None:
            raise FieldValueError(
                f"{needed}: a {self.kind} channel needs it, naming the environment variable "
                "that holds "
                f"its {'URL' if needed == 'url_env' else 'routing key'}",
                at=(needed,),
            )
        if self.kind == "webhook" and (self.url is None) == (self.url_env is None):
            raise FieldValueError(
                "url: a webhook channel needs exactly one of url and url_env", at=("url",)
            )
        return self


class Sla(_Strict):
    first_response: Duration = Field(description="Time to claim after entering the tier.")
    resolution_target: Duration = Field(description="Time to resolve after entering the tier.")

    @model_validator(mode="after")
    def _resolution_not_before_first_response(self) -> Sla:
        if self.resolution_target < self.first_response:
            raise FieldValueError(
                "resolution_target must not be shorter than first_response "
                f"({format_duration(self.resolution_target)} < "
                f"{format_duration(self.first_response)})",
                at=("resolution_target",),
            )
        return self


class Tier(_Strict):
    level: WholeNumber = Field(
        ge=1, description="Position in the escalation path; higher is later."
    )
    name: str = Field(min_length=1, max_length=100)
    team: str = Field(min_length=1, max_length=100)
    kind: Literal["human", "ai"] = Field(
        default="human", description="`ai` marks the automated AI-agent stage."
    )
    notify: tuple[EmailAddress, ...] = ()
    webhook: WebhookUrl | None = Field(
        default=None, description="http(s) URL that receives a JSON POST."
    )
    channels: tuple[ChannelName, ...] = Field(
        default=(), description="Names of the policy's channels this tier is also told on."
    )
    sla: Sla | None = None
    calendar: BusinessCalendar | None = Field(
        default=None, description="Business hours for this tier's clocks; else the policy's."
    )
    stale_after: Duration | None = Field(
        default=None,
        description="A claimed case with no activity this long reminds its assignee; "
        "twice this long and the tier is told and the claim released.",
    )
    repeat_every: Duration | None = Field(
        default=None,
        description="Final tier only: re-notify every this long while unclaimed after "
        "its first response is due.",
    )
    max_repeats: WholeNumber = Field(default=3, ge=1, le=100)
    capabilities: tuple[str, ...] = ()
    escalation_criteria: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _repeats_need_a_first_response(self) -> Tier:
        if self.repeat_every is not None and self.sla is None:
            raise FieldValueError(
                f"tier {self.level}: repeat_every counts from the first response, so it "
                "needs an sla with first_response",
                at=("repeat_every",),
            )
        return self

    @property
    def label(self) -> str:
        """Short form used in subjects and summaries, e.g. `L2 Specialist Support`."""
        return f"L{self.level} {self.name}"


class SeverityOverride(_Strict):
    severity: Severity
    route_to: WholeNumber = Field(
        description="Level of the tier a case of this severity starts at."
    )
    notification: str | None = Field(
        default=None,
        description="A channel every tier notification of such a case also goes to, e.g. "
        "pagerduty; only a label in a policy without channels.",
    )
    description: str | None = None


class TierOverride(_Strict):
    """Customers of a tier (e.g. `enterprise`) start further up: the escalation guide's
    "route enterprise customers directly to L2"."""

    customer_tier: str = Field(min_length=1, max_length=40)
    route_to: WholeNumber = Field(
        description="Level of the tier a case of this customer tier starts at."
    )
    description: str | None = None


def _check_overrides(
    field: str, key: str, overrides: tuple[SeverityOverride | TierOverride, ...], levels: list[int]
) -> None:
    """Each override routes to a tier that exists, and names its `key` value once."""
    seen: set[str] = set()
    for index, override in enumerate(overrides):
        where, value = f"{field}[{index}]", getattr(override, key)
        if override.route_to not in levels:
            raise FieldValueError(
                f"{where}.route_to: level {override.route_to} is not a tier "
                f"(levels: {', '.join(map(str, levels))})",
                at=(field, index, "route_to"),
            )
        if value in seen:
            raise FieldValueError(
                f"{where}.{key}: {value} is overridden twice", at=(field, index, key)
            )
        seen.add(value)


def _unknown_channel(name: str, channels: dict[str, Channel]) -> str:
    known = ", ".join(sorted(channels)) or "none: add a channels section"
    return f"{shown_name(name)} is not one of the policy's channels (channels: {known})"


def _thresholds(value: object) -> object:
    # `warn_at: 0.75` and `warn_at: [0.5, 0.75, 0.9]` are both accepted.
    return (value,) if isinstance(value, int | float) and not isinstance(value, bool) else value


WarnFraction = Annotated[Number, Field(gt=0, lt=1)]


class Policy(_Strict):
    # pydantic's own rendering of an error repeats the input; a channel's may be a
    # secret pasted by mistake. Escalator's messages (first_problem) never quote it.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(default="default", min_length=1, max_length=100)
    warn_at: Annotated[tuple[WarnFraction, ...], BeforeValidator(_thresholds)] = Field(
        default=(0.75,),
        description="Fractions of a running SLA at which the owning tier is warned, "
        "each once per deadline.",
    )
    # Before `tiers`, so the tiers' validator can check the names they refer to.
    channels: dict[ChannelName, Channel] = Field(
        default_factory=dict,
        description="Named Slack, PagerDuty and webhook destinations for tiers and overrides.",
    )
    tiers: tuple[Tier, ...]
    severity_overrides: tuple[SeverityOverride, ...] = ()
    tier_overrides: tuple[TierOverride, ...] = Field(
        default=(),
        description="Customer tiers that start further up. A case starts at the highest "
        "of: the first tier, its severity's override, and its customer tier's override.",
    )
    calendar: BusinessCalendar | None = Field(
        default=None, description="Business hours for every tier's SLA clocks (default 24x7)."
    )
    max_hold: Duration | None = Field(
        default=None, description="A hold longer than this ends by itself."
    )
    max_bounces: WholeNumber = Field(
        default=2,
        ge=1,
        le=20,
        description="Back-and-forth moves between two tiers before manual moves are refused.",
    )
    reopen_window: Duration | None = Field(
        default=None, description="After a resolve, how long the case may be reopened."
    )

    @field_validator("warn_at")
    @classmethod
    def _distinct_sorted(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("give at least one fraction, e.g. 0.75, or remove warn_at")
        return tuple(sorted(set(value)))

    @field_validator("tiers")
    @classmethod
    def _tiers_are_a_path(cls, tiers: tuple[Tier, ...], info: ValidationInfo) -> tuple[Tier, ...]:
        if not tiers:
            raise ValueError("a policy needs at least one tier")
        channels = info.data.get("channels")  # absent when the channels were invalid
        seen: set[int] = set()
        for index, tier in enumerate(tiers):
            for position, name in enumerate(tier.channels):
                if channels is not None and name not in channels:
                    raise FieldValueError(
                        f"tier {tier.level} ({tier.name}): channels[{position}]: "
                        + _unknown_channel(name, channels),
                        at=(index, "channels", position),
                    )
            if tier.level in seen:
                raise FieldValueError(
                    f"level {tier.level} appears twice; give each tier its own level",
                    at=(index, "level"),
                )
            seen.add(tier.level)
        # Positions are the tiers' places in the input, which is what the file shows.
        ordered = sorted(enumerate(tiers), key=lambda pair: pair[1].level)
        for index, tier in ordered[:-1]:
            if tier.repeat_every is not None:
                raise FieldValueError(
                    f"tier {tier.level} ({tier.name}) sets repeat_every, which only the final "
                    "tier uses (the others escalate instead)",
                    at=(index, "repeat_every"),
                )
            if tier.sla is None:
                raise FieldValueError(
                    f"tier {tier.level} ({tier.name}) needs an sla because it is not the final "
                    f"tier; only the final tier may omit it (tiers[{index}].sla)",
                    at=(index, "sla"),
                )
        return tuple(tier for _, tier in ordered)

    @model_validator(mode="after")
    def _overrides_point_at_tiers(self) -> Policy:
        levels = [t.level for t in self.tiers]
        _check_overrides("severity_overrides", "severity", self.severity_overrides, levels)
        _check_overrides("tier_overrides", "customer_tier", self.tier_overrides, levels)
        if self.channels:  # else `notification` is a label, as before channels existed
            for index, override in enumerate(self.severity_overrides):
                name = override.notification
                if name is not None and name not in self.channels:
                    raise FieldValueError(
                        f"severity_overrides[{index}].notification: "
                        + _unknown_channel(name, self.channels),
                        at=("severity_overrides", index, "notification"),
                    )
        return self

    # -- lookups --------------------------------------------------------------

    def tier(self, level: int) -> Tier:
        for tier in self.tiers:
            if tier.level == level:
                return tier
        raise KeyError(f"policy {self.name!r} has no tier {level}")

    def calendar_for(self, level: int) -> BusinessCalendar | None:
        """The tier's own calendar, else the policy's; None means 24x7."""
        return self.tier(level).calendar or self.calendar

    def tier_override_for(self, customer_tier: str | None) -> TierOverride | None:
        if customer_tier is None:
            return None
        return next((o for o in self.tier_overrides if o.customer_tier == customer_tier), None)

    def override_for(self, severity: str) -> SeverityOverride | None:
        return next((o for o in self.severity_overrides if o.severity == severity), None)

    def channels_for(self, level: int, severity: str) -> tuple[str, ...]:
        """The channels a notification of tier `level` goes to for a case of
        `severity`: the tier's own, then its severity override's, each once."""
        names = list(self.tier(level).channels)
        override = self.override_for(severity)
        if override and override.notification in self.channels:
            names.append(override.notification)
        return tuple(dict.fromkeys(names))

    @staticmethod
    def builder(name: str = "default", warn_at: float = 0.75) -> PolicyBuilder:
        return PolicyBuilder(name=name, warn_at=warn_at)


class PolicyBuilder:
    """The classic stage API, for policies written in Python.

        Policy.builder("benefits")
            .add_stage("helpdesk", handler="helpdesk_team", timeout=timedelta(hours=48))
            .add_stage("supervisor", handler="supervisor_office", timeout=timedelta(hours=72))
            .add_stage("ai_agent", handler="ai_representative", timeout=None, kind="ai")
            .build()

    A stage's `timeout` is how long it may hold an unresolved case, so it becomes both
    the first-response and the resolution SLA of the tier. `timeout=None` is allowed
    only on the last stage, which then never escalates.
    """

    def __init__(self, name: str = "default", warn_at: float = 0.75) -> None:
        self._name = name
        self._warn_at = warn_at
        self._tiers: list[dict] = []
        self._overrides: list[dict] = []
        self._channels: dict[str, dict] = {}

    def channel(self, name: str, kind: ChannelKind, **settings: str) -> PolicyBuilder:
        """Name a channel that stages and routes can use, e.g.
        `.channel("pagerduty", "pagerduty", routing_key_env="PAGERDUTY_ROUTING_KEY")`."""
        self._channels[name] = {"kind": kind, **settings}
        return self

    def add_stage(
        self,
        name: str,
        *,
        handler: str,
        timeout: timedelta | str | float | None,
        notify: tuple[str, ...] | list[str] = (),
        kind: Literal["human", "ai"] = "human",
        webhook: str | None = None,
        channels: tuple[str, ...] | list[str] = (),
    ) -> PolicyBuilder:
        sla = None
        if timeout is not None:
            sla = {"first_response": timeout, "resolution_target": timeout}
        self._tiers.append(
            {
                "level": len(self._tiers) + 1,
                "name": name,
                "team": handler,
                "kind": kind,
                "notify": tuple(notify),
                "webhook": webhook,
                "channels": tuple(channels),
                "sla": sla,
            }
        )
        return self

    def route(
        self, severity: Severity, *, to_stage: str, notification: str | None = None
    ) -> PolicyBuilder:
        """Send cases of `severity` straight to the named stage."""
        level = next((t["level"] for t in self._tiers if t["name"] == to_stage), -1)
        self._overrides.append(
            {"severity": severity, "route_to": level, "notification": notification}
        )
        return self

    def build(self) -> Policy:
        return Policy.model_validate(
            {
                "name": self._name,
                "warn_at": self._warn_at,
                "channels": self._channels,
                "tiers": self._tiers,
                "severity_overrides": self._overrides,
            }
        )
