"""Escalator's configuration: one model, read from the environment once at start-up.

`EscalatorSettings` groups everything the worker and the clients read:

  - `temporal` (`TemporalSettings`): where the Temporal service is. Loaded through
    `temporalio.envconfig`, so a profile in a TOML client config file
    (`TEMPORAL_CONFIG_FILE`, else ~/.config/temporalio/temporal.toml; `TEMPORAL_PROFILE`
    picks the profile) and the SDK's own variables (TEMPORAL_TLS_CLIENT_CERT_PATH and
    friends for mTLS, TEMPORAL_GRPC_META_*) work; TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    TEMPORAL_API_KEY, TEMPORAL_TLS and ESCALATOR_TASK_QUEUE mean what they always meant
    and win over the file.
  - `smtp` (`SmtpSettings`): SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD,
    SMTP_STARTTLS, MAIL_FROM.
  - `ai` (`AiSettings`): ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ESCALATOR_AI_MODEL,
    ESCALATOR_AI_TIMEOUT. With no key the AI activities answer offline.
  - `worker` (`WorkerSettings`): ESCALATOR_MAX_CACHED_WORKFLOWS, ESCALATOR_AI_CONCURRENCY,
    ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT, ESCALATOR_STICKY_TIMEOUT,
    ESCALATOR_WORKFLOW_SANDBOX, ESCALATOR_METRICS_ADDRESS.
  - `webhook` (`WebhookSettings`): ESCALATOR_WEBHOOK_SECRET (signs each POST),
    ESCALATOR_WEBHOOK_ALLOW_PRIVATE (allow loopback and private receivers).
  - `links` (`LinkSettings`): ESCALATOR_WEB_UI (the Temporal Web UI), ESCALATOR_API_URL
    (the Escalator API): where the case links in Slack messages and PagerDuty alerts go.

Every variable keeps the name it had before this model existed. Empty values count as
unset (`SMTP_USERNAME=` in a .env file means "no auth"), and surrounding spaces are
ignored except in SMTP_PASSWORD. A bad value is an `InvalidInput`: one line naming the
variable and the fix. Secrets are `SecretStr`, shown as '***' in repr and str and as
'**********' by `model_dump_json`; call `.get_secret_value()` where one is really used.

Each group also loads on its own (`SmtpSettings.from_env(environ)`), and its plain
constructor (`TemporalSettings(address=...)`) gives the defaults, never the environment.
`EscalatorSettings()` reads `os.environ`; `EscalatorSettings.from_env(mapping)` reads only
`mapping`. ESCALATOR_ENCRYPTION_KEY and ESCALATOR_REQUIRE_ENCRYPTION stay with the payload
codec (escalator/adapters/codec.py), ESCALATOR_CODEC_TOKEN with the codec server.

Longer than most modules: every setting and its one-line error live together,
so the precedence of variables, profiles and defaults is stated once.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS

from escalator.domain.errors import InvalidInput

DEFAULT_TASK_QUEUE = "escalations"
_TRUE = frozenset({"1", "true", "yes", "on"})

# -- SMTP defaults: a local development mail catcher (e.g. Mailpit or aiosmtpd on port
# 1025), so a fresh checkout sends mail somewhere harmless without configuration.
DEFAULT_SMTP_HOST = "127.0.0.1"
DEFAULT_SMTP_PORT = 1025
DEFAULT_MAIL_FROM = "Escalator <escalator@localhost>"

# -- AI defaults.
# The newest Sonnet the installed SDK knows; claude-sonnet-4-5 is past deprecation
# (the SDK warns: end of life 2026-11-30). ESCALATOR_AI_MODEL overrides.
DEFAULT_MODEL = "claude-sonnet-5-5"
# Per attempt, below ASSESSMENT_ATTEMPT_TIMEOUT (90 s), so a slow API fails here with a
# clear message instead of as an anonymous activity timeout. ESCALATOR_AI_TIMEOUT overrides.
DEFAULT_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 5.0

# -- Worker defaults (escalator/runtime/worker.py re-exports them).
# Model calls are asyncio I/O, so a slot costs little; this bounds how many hung
# calls one process holds at once. ESCALATOR_AI_CONCURRENCY overrides.
DEFAULT_AI_CONCURRENCY = 200
# How worker.py runs workflow code. The sandbox re-imports the workflow module for
# every case it loads: about 0.2 MiB and 25 % more CPU per cached case, which at
# 1,000 cached cases doubles the worker's memory and slows a herd of deadlines
# (docs/benchmarks.md). Its guard against non-deterministic calls is kept where it
# catches mistakes before they ship: every test and every replay of the recorded
# histories runs the workflow in the sandbox (build_workers' default).
# ESCALATOR_WORKFLOW_SANDBOX=on runs production workers sandboxed too.
PRODUCTION_SANDBOX_DEFAULT = False
# Cases worker.py keeps in memory, about 0.12 MiB each unsandboxed; the others are
# replayed from history when they next act. 800 keeps the worker under 250 MiB
# however many cases are open (docs/benchmarks.md, figure d), and is above any
# herd of deadlines measured there. ESCALATOR_MAX_CACHED_WORKFLOWS overrides.
PRODUCTION_MAX_CACHED_WORKFLOWS = 800
# How long a stopping worker lets activities in flight finish before it cancels them
# (the SDK's default is 0: cancel at once, so a mail being sent when SIGTERM came was
# cut off and sent again by the next worker). One delivery attempt's start-to-close
# timeout (workflows.escalation.DELIVERY_ATTEMPT_TIMEOUT; tests/test_settings.py checks
# they agree): waiting longer is pointless, as Temporal has retried the attempt by then.
# ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT overrides; whatever stops the worker must wait
# longer than this before it kills it (docker-compose.yml's stop_grace_period, and
# `escalator up`).
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT = timedelta(seconds=30)
# How long a workflow task may wait on this worker's sticky queue before Temporal
# hands it to any worker on the task queue. After a kill -9 it is how late a case
# acts whose deadline falls in the next 10 s (Temporal's window for a silent sticky
# poller). Kept at the SDK's 10 s on purpose: in a herd of 500 deadlines at once a
# busy worker leaves tasks on its sticky queue for up to 9-14 s, and with 3 or 5 s
# hundreds of them timed out, were re-sent with their full history and the herd took
# 1.8 times as long (docs/reliability.md, "Kill -9 recovery"). A dead worker holding a
# task is covered by the shorter workflow task timeout instead (escalator/devstack/stack.py).
# ESCALATOR_STICKY_TIMEOUT overrides, e.g. 3 where few deadlines ever coincide.
DEFAULT_STICKY_TIMEOUT = timedelta(seconds=10)
MAX_SECONDS = 3600
# Where the worker serves Prometheus metrics (/metrics): nowhere unless
# ESCALATOR_METRICS_ADDRESS is set, and on loopback unless it names another address.
METRICS_DEFAULT_HOST = "127.0.0.1"
# The Temporal dev server's Web UI, where case links go unless ESCALATOR_WEB_UI says.
DEFAULT_WEB_UI = "http://localhost:8233"


# -- shared machinery ----------------------------------------------------------------------


class _EnvValueError(ValueError):
    """A validator's complete, user-facing message (it names the variable itself)."""


class _Masked:
    def __repr__(self) -> str:
        return "'***'"


def _env(default: Any = None, name: str = "", **kwargs: Any) -> Any:
    """A field read from the environment variable `name`."""
    return Field(default, validation_alias=name, **kwargs)


class _Group(BaseModel):
    """One group of settings. Each field's `validation_alias` is its environment variable;
    fields without one are not read from the environment."""

    model_config = ConfigDict(
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        arbitrary_types_allowed=True,
    )
    # Values read verbatim: a password may legitimately start or end with a space.
    _UNSTRIPPED: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """Every environment variable this group reads."""
        return tuple(name for field in cls.model_fields.values() if (name := _alias(field)))

    @classmethod
    def _raw(cls, environ: Mapping[str, str]) -> dict[str, str]:
        # Only the names we know, each with `get`: the environment may hold anything.
        raw = {}
        for name in cls.env_names():
            value = environ.get(name)
            if value is None:
                continue
            if name not in cls._UNSTRIPPED:
                value = value.strip()
            if value:
                raw[name] = value
        return raw

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        return _validated(cls, cls._raw(environ))

    @classmethod
    def _env_name(cls, field_name: str | None) -> str:
        field = cls.model_fields.get(field_name or "")
        return (_alias(field) if field else None) or str(field_name)

    def __repr_args__(self):
        for key, value in super().__repr_args__():
            yield key, _Masked() if isinstance(value, SecretStr) else value


def _alias(field: FieldInfo) -> str | None:
    alias = field.validation_alias
    return alias if isinstance(alias, str) else None


_M = TypeVar("_M", bound=BaseModel)


def _validated(cls: type[_M], raw: Mapping[str, Any]) -> _M:
    try:
        return cls.model_validate(raw)
    except ValidationError as error:
        raise InvalidInput(describe_settings_error(error)) from None


def describe_settings_error(error: ValidationError) -> str:
    """The first problem, on one line, naming the environment variable."""
    first = error.errors(include_url=False)[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, _EnvValueError):
        return _one_line(cause)
    name = first["loc"][-1] if first["loc"] else "settings"
    value = first.get("input")
    shown = repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    return _one_line(f"{name}={shown}: {first['msg']}")


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _seconds(
    raw: Any, name: str, *, allow_zero: bool, limit: float = MAX_SECONDS
) -> timedelta | Any:
    if isinstance(raw, timedelta):
        value = raw.total_seconds()
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        return raw  # pydantic reports the type
    # float() also accepts "nan" and "inf", which are no durations.
    if not (0 <= value <= limit) or (value == 0 and not allow_zero):
        span = "from 0 to" if allow_zero else "more than 0 and at most"
        raise _EnvValueError(f"{name}={raw!r}: must be a number of seconds {span} {limit:g}")
    return timedelta(seconds=value)


# -- Temporal --------------------------------------------------------------------------------


class TemporalSettings(_Group):
    """Where the Temporal service is, and how to reach it."""

    address: str = _env("localhost:7233", "TEMPORAL_ADDRESS")
    namespace: str = _env("default", "TEMPORAL_NAMESPACE")
    task_queue: str = _env(DEFAULT_TASK_QUEUE, "ESCALATOR_TASK_QUEUE")
    api_key: SecretStr | None = _env(None, "TEMPORAL_API_KEY")  # Temporal Cloud; implies TLS
    tls: bool = _env(False, "TEMPORAL_TLS")
    # From the envconfig profile or TEMPORAL_TLS_* (server name, CA, client cert and key
    # for mTLS). The key may be inline PEM, so neither is shown nor serialised.
    tls_config: ClientConfigTLS | None = Field(None, repr=False, exclude=True)
    # gRPC metadata from the profile or TEMPORAL_GRPC_META_*: often holds credentials.
    rpc_metadata: dict[str, str] = Field(default_factory=dict, repr=False, exclude=True)
    profile: str | None = None  # the envconfig profile used, for logs

    @field_validator("tls", mode="before")
    @classmethod
    def _truthy(cls, raw: Any) -> Any:
        return raw.strip().lower() in _TRUE if isinstance(raw, str) else raw

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TemporalSettings:
        """TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS and
        ESCALATOR_TASK_QUEUE, over the `temporalio.envconfig` profile (if any)."""
        copy = dict(environ)
        profile = _load_profile(copy)
        raw = cls._raw(environ)
        address = raw.get("TEMPORAL_ADDRESS") or profile.address or None
        namespace = raw.get("TEMPORAL_NAMESPACE") or profile.namespace or None
        api_key = raw.get("TEMPORAL_API_KEY") or profile.api_key or None
        section = profile.tls
        if raw.get("TEMPORAL_TLS", "").lower() in _TRUE:
            tls = True
        elif section is not None and section.disabled is True:
            tls = False  # the profile turns TLS off, even with an API key
        else:
            # As before: an API key implies TLS; and so does any TLS setting in the profile.
            tls = api_key is not None or section is not None
        values: dict[str, Any] = {
            "ESCALATOR_TASK_QUEUE": raw.get("ESCALATOR_TASK_QUEUE"),
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": namespace,
            "TEMPORAL_API_KEY": api_key,
            "TEMPORAL_TLS": tls,
            "tls_config": section if tls and section is not None else None,
            "rpc_metadata": dict(profile.grpc_meta),
            "profile": (copy.get("TEMPORAL_PROFILE") or "").strip() or None,
        }
        return _validated(cls, {key: value for key, value in values.items() if value is not None})

    def connect_tls(self):
        """`Client.connect`'s `tls`: False, True, or the profile's TLSConfig (mTLS)."""
        if not self.tls:
            return False
        if self.tls_config is None:
            return True
        return self.tls_config.to_connect_tls_config()


def _load_profile(environ: dict[str, str]) -> ClientConfigProfile:
    # TEMPORAL_TLS keeps its old meaning (truthy words turn TLS on, anything else is
    # off); the SDK would read "maybe" as "on", so it does not see it.
    # Empty values count as unset, as everywhere else in these settings.
    environ = {
        key: value for key, value in environ.items() if key != "TEMPORAL_TLS" and value.strip()
    }
    path = (environ.get("TEMPORAL_CONFIG_FILE") or "").strip()
    if path and not Path(path).is_file():
        raise InvalidInput(
            f"TEMPORAL_CONFIG_FILE: {path!r} is not a file; point it at a Temporal client "
            "config (TOML) or unset it"
        )
    try:
        return ClientConfigProfile.load(override_env_vars=environ)
    except Exception as error:  # the bridge's ConfigError is not public
        where = f"file {path!r}" if path else "file (~/.config/temporalio/temporal.toml)"
        raise InvalidInput(
            f"Temporal client config: {_one_line(error)[:300]}; fix the {where} or "
            "TEMPORAL_PROFILE, or unset them"
        ) from None


# -- SMTP ----------------------------------------------------------------------------------


class SmtpSettings(_Group):
    """How the `send_email` activity reaches the mail server."""

    _UNSTRIPPED: ClassVar[frozenset[str]] = frozenset({"SMTP_PASSWORD"})

    host: str = _env(DEFAULT_SMTP_HOST, "SMTP_HOST")
    port: int = _env(DEFAULT_SMTP_PORT, "SMTP_PORT")
    username: str | None = _env(None, "SMTP_USERNAME")
    password: SecretStr | None = _env(None, "SMTP_PASSWORD")
    starttls: bool = _env(False, "SMTP_STARTTLS")
    mail_from: str = _env(DEFAULT_MAIL_FROM, "MAIL_FROM")

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, raw: Any) -> Any:
        try:
            port = int(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else 0
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise _EnvValueError(
                f"SMTP_PORT: {raw!r} is not a port number; set it to a number from 1 to 65535 "
                f"(e.g. 587 for STARTTLS, or unset it for the default {DEFAULT_SMTP_PORT})"
            )
        return port

    @field_validator("starttls", mode="before")
    @classmethod
    def _truthy(cls, raw: Any) -> Any:
        return raw.strip().lower() in _TRUE if isinstance(raw, str) else raw

    @field_validator("mail_from", mode="before")
    @classmethod
    def _mail_from(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        # The value goes verbatim into the From header and the SMTP envelope: refuse a
        # line break (header injection) or anything without an address in it.
        address = parseaddr(raw)[1]
        if any(c in raw for c in "\r\n") or "@" not in address:
            raise _EnvValueError(
                f"MAIL_FROM: {raw!r} is not a sender address; set it to e.g. "
                f"'Escalator <escalator@example.com>' (one line)"
            )
        return raw


# -- AI ------------------------------------------------------------------------------------


class AiSettings(_Group):
    """The Messages API the AI activities call; no key means answer offline."""

    api_key: SecretStr | None = _env(None, "ANTHROPIC_API_KEY")
    base_url: str | None = _env(None, "ANTHROPIC_BASE_URL")
    model: str = _env(DEFAULT_MODEL, "ESCALATOR_AI_MODEL")
    timeout: float = _env(DEFAULT_TIMEOUT_SECONDS, "ESCALATOR_AI_TIMEOUT")  # per attempt, s
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, raw: Any) -> Any:
        try:
            value = float(raw) if not isinstance(raw, bool) else -1.0
        except (TypeError, ValueError):
            value = -1.0
        if not (0 < value < math.inf):  # also refuses nan
            raise _EnvValueError(
                f"ESCALATOR_AI_TIMEOUT={raw!r}: must be a positive number of seconds "
                f"(or unset it for the default {DEFAULT_TIMEOUT_SECONDS:g})"
            )
        return value

    @property
    def offline(self) -> bool:
        """True without an API key: the activities answer from templates."""
        return self.api_key is None


# -- worker tuning -------------------------------------------------------------------------


class WorkerSettings(_Group):
    """worker.py's tuning (README, "Tuning")."""

    max_cached_workflows: int = _env(
        PRODUCTION_MAX_CACHED_WORKFLOWS, "ESCALATOR_MAX_CACHED_WORKFLOWS"
    )
    ai_concurrency: int = _env(DEFAULT_AI_CONCURRENCY, "ESCALATOR_AI_CONCURRENCY")
    graceful_shutdown_timeout: timedelta = _env(
        DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT, "ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT"
    )
    sticky_timeout: timedelta = _env(DEFAULT_STICKY_TIMEOUT, "ESCALATOR_STICKY_TIMEOUT")
    workflow_sandbox: bool = _env(PRODUCTION_SANDBOX_DEFAULT, "ESCALATOR_WORKFLOW_SANDBOX")
    # host:port (an IP address, [v6] in brackets); "9464" or ":9464" is 127.0.0.1:9464.
    metrics_address: str | None = _env(None, "ESCALATOR_METRICS_ADDRESS")

    @field_validator("max_cached_workflows", "ai_concurrency", mode="before")
    @classmethod
    def _whole_number(cls, raw: Any, info) -> Any:
        if isinstance(raw, str):
            ok = raw.isdigit() and int(raw) >= 1
        else:
            ok = isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1
        if not ok:
            name = cls._env_name(info.field_name)
            raise _EnvValueError(f"{name}={raw!r}: must be a whole number of at least 1")
        return int(raw)

    @field_validator("graceful_shutdown_timeout", mode="before")
    @classmethod
    def _drain(cls, raw: Any) -> Any:
        return _seconds(raw, "ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT", allow_zero=True)

    @field_validator("sticky_timeout", mode="before")
    @classmethod
    def _sticky(cls, raw: Any) -> Any:
        return _seconds(raw, "ESCALATOR_STICKY_TIMEOUT", allow_zero=False)

    @field_validator("workflow_sandbox", mode="before")
    @classmethod
    def _on_off(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        value = raw.strip().lower()
        if value not in ("on", "off"):
            raise _EnvValueError(f"ESCALATOR_WORKFLOW_SANDBOX={value!r}: must be on or off")
        return value == "on"

    @field_validator("metrics_address", mode="before")
    @classmethod
    def _metrics_address(cls, raw: Any) -> Any:
        return metrics_bind_address(raw) if isinstance(raw, str) else raw


def metrics_bind_address(raw: str) -> str:
    """`host:port` for PrometheusConfig(bind_address=...), from ESCALATOR_METRICS_ADDRESS:
    "127.0.0.1:9464", "[::1]:9464", or a bare port ("9464", ":9464") on 127.0.0.1."""
    value = raw.strip()
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host or METRICS_DEFAULT_HOST
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(literal)
    except ValueError:
        ip = None
    bracketed = host != literal
    ok = (
        ip is not None
        and bracketed == (ip.version == 6)
        and port.isdigit()
        and 1 <= int(port) <= 65535
    )
    if not ok:
        raise _EnvValueError(
            f"ESCALATOR_METRICS_ADDRESS={raw!r}: must be host:port with an IP address "
            "(e.g. 127.0.0.1:9464, [::1]:9464) or a port (9464); unset it to serve no metrics"
        )
    shown = f"[{ip}]" if bracketed else str(ip)
    return f"{shown}:{int(port)}"


class WebhookSettings(_Group):
    """How `post_webhook` signs and where it may send (docs/webhooks.md)."""

    _MIN_SECRET_CHARS: ClassVar[int] = 16

    # Shared with the receivers; each POST carries X-Escalator-Signature when it is set.
    secret: SecretStr | None = _env(None, "ESCALATOR_WEBHOOK_SECRET")
    # Loopback, link-local and private receivers are refused unless this is true.
    allow_private: bool = _env(False, "ESCALATOR_WEBHOOK_ALLOW_PRIVATE")

    @field_validator("secret", mode="before")
    @classmethod
    def _secret(cls, raw: Any) -> Any:
        value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        if isinstance(value, str) and len(value) < cls._MIN_SECRET_CHARS:
            # Never echoed: even a short secret is a secret.
            raise _EnvValueError(
                f"ESCALATOR_WEBHOOK_SECRET is {len(value)} characters; use at least "
                f"{cls._MIN_SECRET_CHARS} random ones, e.g. "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return raw

    @field_validator("allow_private", mode="before")
    @classmethod
    def _flag(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise _EnvValueError(
            f"ESCALATOR_WEBHOOK_ALLOW_PRIVATE={raw!r}: must be true or false (or unset)"
        )

    @property
    def secret_bytes(self) -> bytes | None:
        return self.secret.get_secret_value().encode() if self.secret else None


class LinkSettings(_Group):
    """Where a Slack message's or PagerDuty alert's case link points (activities/channels.py).

    Not checked here: a link is a convenience, so a bad value must cost the link, not
    the worker's start or a page. The channel activities check it when they build one
    (`escalator.domain.slack_message.checked_case_link`) and send without it, with a
    warning, when it is refused."""

    # The same variable and default as the API's /queue page (escalator/api/stream.py).
    web_ui: str = _env(DEFAULT_WEB_UI, "ESCALATOR_WEB_UI")
    # When set, links go to the API's live queue (`<api_url>/queue`) instead.
    api_url: str | None = _env(None, "ESCALATOR_API_URL")


DEFAULT_LEDGER_URL = "sqlite:///.data/ledger.db"  # under the data directory


class LedgerSettings(_Group):
    """Where the case ledger is (escalator/adapters/ledger_store.py). A URL may hold a
    password, so it is a secret: never logged, never shown."""

    url: SecretStr = _env(SecretStr(DEFAULT_LEDGER_URL), "ESCALATOR_LEDGER_URL")

    @field_validator("url", mode="before")
    @classmethod
    def _database_url(cls, raw: Any) -> Any:
        value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        if isinstance(value, str) and not value.startswith(("sqlite://", "postgresql")):
            # The value itself is not echoed: it may carry a password.
            raise _EnvValueError(
                "ESCALATOR_LEDGER_URL: use sqlite:///path/ledger.db or "
                "postgresql://user:password@host/dbname"
            )
        return raw


# -- everything ------------------------------------------------------------------------------

_GROUPS: dict[str, type[_Group]] = {
    "temporal": TemporalSettings,
    "smtp": SmtpSettings,
    "ai": AiSettings,
    "worker": WorkerSettings,
    "ledger": LedgerSettings,
    "webhook": WebhookSettings,
    "links": LinkSettings,
}


class _GroupsFromEnviron(PydanticBaseSettingsSource):
    """Each group not given to the constructor, from `os.environ` by its own names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ loads whole groups

    def __call__(self) -> dict[str, Any]:
        return {
            name: group.from_env(os.environ)
            for name, group in _GROUPS.items()
            if name not in self.current_state
        }


class EscalatorSettings(BaseSettings):
    """Everything the worker and the clients read from the environment, validated once."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    temporal: TemporalSettings = TemporalSettings()
    smtp: SmtpSettings = SmtpSettings()
    ai: AiSettings = AiSettings()
    worker: WorkerSettings = WorkerSettings()
    ledger: LedgerSettings = LedgerSettings()
    webhook: WebhookSettings = WebhookSettings()
    links: LinkSettings = LinkSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Groups given to the constructor win; the rest come from the environment under
        # their historical, flat names (no .env file, no secrets directory).
        return init_settings, _GroupsFromEnviron(settings_cls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> EscalatorSettings:
        """Every group from `environ` (only): raises `InvalidInput` on the first bad value."""
        return cls(**{name: group.from_env(environ) for name, group in _GROUPS.items()})

    @classmethod
    def defaults(cls, **groups: _Group) -> EscalatorSettings:
        """The built-in defaults (no environment), with `groups` replaced."""
        return cls(**{**{name: group() for name, group in _GROUPS.items()}, **groups})

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """Every environment variable the settings read by name."""
        return tuple(name for group in _GROUPS.values() for name in group.env_names())
