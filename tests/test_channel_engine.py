"""The case engine and the policy's channels: what goes to Slack, PagerDuty and
webhook channels, and when. Pure code, no Temporal: the workflow carries out
exactly these effects (tests/test_channels.py runs them for real)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support import DEFAULT_POLICY, actor
from support import EngineCase as Case

from escalator.domain import case as engine
from escalator.domain.models import (
    CaseInput,
    ClaimRequest,
    DeescalateRequest,
    EscalateRequest,
    ReopenRequest,
    ResolveRequest,
)
from escalator.domain.names import (
    POST_CHANNEL_WEBHOOK,
    POST_SLACK_MESSAGE,
    SEND_EMAIL,
    SEND_PAGERDUTY_EVENT,
)
from escalator.domain.policy import Channel, Policy, reserved_env_name

HOUR = timedelta(hours=1)
NOTE = {"reason": "needs backend access", "steps_taken": ["checked runbook"]}


def chat_and_pager(**changes) -> Policy:
    """The default policy, with Slack on L2, PagerDuty on L3 and for P0 cases."""
    data = DEFAULT_POLICY.model_dump(mode="json")
    data["channels"] = {
        "slack_oncall": {"kind": "slack", "url_env": "SLACK_ONCALL_URL"},
        "pagerduty": {"kind": "pagerduty", "routing_key_env": "PAGERDUTY_ROUTING_KEY"},
        "audit": {"kind": "webhook", "url": "https://audit.example/hook"},
    }
    data["tiers"][1]["channels"] = ["slack_oncall", "audit"]
    data["tiers"][2]["channels"] = ["pagerduty"]
    data["severity_overrides"] = [
        {"severity": "P0", "route_to": 2, "notification": "pagerduty"},
        {"severity": "P1", "route_to": 2, "notification": "slack_oncall"},
    ]
    return Policy.model_validate({**data, **changes})


POLICY = chat_and_pager()


def sends(case: Case) -> list[tuple[str, str, str, str | None]]:
    """(activity, channel, event, purpose) of every channel send so far, in order."""
    return [
        (e.activity, e.notification.channel, e.notification.event, e.purpose)
        for e in case.effects
        if isinstance(e, engine.Deliver) and e.activity != SEND_EMAIL
    ]


def claim(user: str = "alice"):
    return ClaimRequest(actor=actor(user))


def resolve(user: str = "alice"):
    return ResolveRequest(actor=actor(user), summary="fixed")


def test_a_tier_without_channels_sends_mail_only():
    case = Case(POLICY)  # P3 at L1, which has no channels
    assert sends(case) == []
    assert [n.purpose for n in case.sent()] == ["tier_entry"]


def test_an_escalation_into_a_slack_tier_posts_there_and_to_its_webhook():
    case = Case(POLICY)
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    assert sends(case) == [
        (POST_SLACK_MESSAGE, "slack_oncall", "notify", "tier_entry"),
        (POST_CHANNEL_WEBHOOK, "audit", "notify", "tier_entry"),
    ]
    send = _channel_sends(case)[0]
    # The message carries the notification, told apart per channel, and the
    # channel's settings: names of variables, never their values.
    assert send.notification.tier.level == 2
    assert send.message_id == send.notification.message_id.replace(
        "@escalator>", ".slack_oncall@escalator>"
    )
    assert send.settings.url_env == "SLACK_ONCALL_URL"


def _channel_sends(case: Case):
    return [
        e.notification
        for e in case.effects
        if isinstance(e, engine.Deliver) and e.activity != SEND_EMAIL
    ]


def test_a_p0_case_pages_once_is_acknowledged_by_the_claim_and_resolved_with_the_case():
    case = Case(POLICY, severity="P0")  # routed to L2, and P0 cases page
    assert sends(case) == [
        (POST_SLACK_MESSAGE, "slack_oncall", "notify", "tier_entry"),
        (POST_CHANNEL_WEBHOOK, "audit", "notify", "tier_entry"),
        (SEND_PAGERDUTY_EVENT, "pagerduty", "trigger", "tier_entry"),
    ]
    assert case.state.paged == ("pagerduty",)
    case.do(engine.claim, claim())
    case.do(engine.resolve, resolve())
    pages = [s for s in _channel_sends(case) if s.channel == "pagerduty"]
    assert [p.event for p in pages] == ["trigger", "acknowledge", "resolve"]
    assert {p.case_id for p in pages} == {"c-1"}
    assert len({p.message_id for p in pages}) == 3
    assert [p.notification is None for p in pages] == [False, True, True]
    assert case.state.paged == ()


def test_warnings_go_to_slack_but_never_page():
    case = Case(POLICY, severity="P0")
    before = len(sends(case))
    case.after(HOUR + HOUR / 2)  # L2's first response is 2 h: the 75 % warning
    later = sends(case)[before:]
    assert (POST_SLACK_MESSAGE, "slack_oncall", "notify", "warning") in later
    assert all(event != "trigger" for _, _, event, _ in later)


def test_escalating_into_the_paging_tier_triggers_and_a_second_claim_acknowledges_once_each():
    case = Case(POLICY, severity="P1")  # routed to L2, which does not page
    case.do(engine.claim, claim())
    assert [s for s in sends(case) if s[0] == SEND_PAGERDUTY_EVENT] == []  # nothing to ack
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    case.do(engine.claim, claim("bob"))
    case.do(engine.resolve, resolve("bob"))
    pages = [(s[2], s[3]) for s in sends(case) if s[0] == SEND_PAGERDUTY_EVENT]
    assert pages == [("trigger", "tier_entry"), ("acknowledge", None), ("resolve", None)]


def test_leaving_the_paging_tier_keeps_the_alert_until_the_case_is_resolved():
    case = Case(POLICY)
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))  # into L3: page
    case.do(engine.claim, claim())
    back = DeescalateRequest(actor=actor(), reason="needs the customer", to_level=2)
    case.do(engine.deescalate, back)
    assert case.state.paged == ("pagerduty",)
    case.do(engine.claim, claim("bob"))
    case.do(engine.resolve, resolve("bob"))
    pages = [s[2] for s in sends(case) if s[0] == SEND_PAGERDUTY_EVENT]
    # Acknowledged by the claim at L3 and again at L2 (harmless: the same key).
    assert pages == ["trigger", "acknowledge", "acknowledge", "resolve"]


def test_a_reopened_case_pages_again_and_resolves_again():
    case = Case(chat_and_pager(reopen_window="1d"), severity="P0")
    case.do(engine.claim, claim())
    case.do(engine.resolve, resolve())
    case.do(engine.reopen, ReopenRequest(actor=actor(), reason="still down"))
    assert case.state.paged == ("pagerduty",)
    case.do(engine.claim, claim())
    case.do(engine.resolve, resolve())
    pages = [s[2] for s in sends(case) if s[0] == SEND_PAGERDUTY_EVENT]
    assert pages == ["trigger", "acknowledge", "resolve"] * 2


def test_a_legacy_label_sends_nothing_extra():
    case = Case(DEFAULT_POLICY, severity="P0")  # `notification: pagerduty` is a label there
    assert sends(case) == []
    assert case.sent()[0].channel == "pagerduty"


def test_a_tier_heard_only_on_a_channel_is_not_skipped():
    data = chat_and_pager().model_dump(mode="json")
    data["tiers"][1]["notify"] = []
    case = Case(Policy.model_validate(data))
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    assert case.timeline("notification_skipped") == []
    assert sends(case)[0] == (POST_SLACK_MESSAGE, "slack_oncall", "notify", "tier_entry")


def test_outcomes_on_the_timeline_name_the_channel_only():
    case = Case(POLICY, severity="P0")
    page = next(s for s in _channel_sends(case) if s.channel == "pagerduty")
    failed = engine.delivery_failed(
        case.state,
        case.case,
        SEND_PAGERDUTY_EVENT,
        page,
        "pagerduty: PAGERDUTY_ROUTING_KEY is not set in the worker's environment",
        case.now,
    )
    entry = failed.state.timeline[-1]
    assert entry.kind == "notification_failed"
    assert entry.detail.startswith(f"send_pagerduty_event pagerduty trigger {page.message_id}: ")


def test_the_stage_builder_names_channels_for_stages_and_routes():
    policy = (
        Policy.builder("benefits")
        .channel("pagerduty", "pagerduty", routing_key_env="PAGERDUTY_ROUTING_KEY")
        .channel("desk_chat", "slack", url_env="DESK_SLACK_URL")
        .add_stage("helpdesk", handler="helpdesk_team", timeout=HOUR, channels=["desk_chat"])
        .add_stage("supervisor", handler="supervisor_office", timeout=None)
        .route("P0", to_stage="supervisor", notification="pagerduty")
        .build()
    )
    assert policy.channels_for(1, "P3") == ("desk_chat",)
    assert policy.channels_for(2, "P0") == ("pagerduty",)
    case = Case(policy, severity="P0")
    assert sends(case) == [(SEND_PAGERDUTY_EVENT, "pagerduty", "trigger", "tier_entry")]


def test_a_refused_channel_never_repeats_its_value_even_in_pydantics_own_text():
    import pydantic

    key = "R0UTINGKEY" + "x" * 22  # pasted where the variable's name belongs
    with pytest.raises(pydantic.ValidationError) as refused:
        Policy.model_validate(
            {
                **POLICY.model_dump(mode="json"),
                "channels": {"pagerduty": {"kind": "pagerduty", "routing_key_env": key.lower()}},
            }
        )
    assert key.lower() not in str(refused.value)
    # nor when the policy comes inside a case, as every client sends it
    with pytest.raises(pydantic.ValidationError) as refused:
        CaseInput.model_validate({"case_id": "c-1", "title": "t", "policy": {
            **POLICY.model_dump(mode="json"),
            "channels": {"pagerduty": {"kind": "pagerduty", "routing_key_env": key.lower()}},
        }})  # fmt: skip
    assert key.lower() not in str(refused.value)


@pytest.mark.parametrize("name", ["SMTP_PASSWORD", "TEMPORAL_API_KEY", "ANTHROPIC_API_KEY",
                                  "ESCALATOR_WEBHOOK_SECRET", "MAIL_FROM"])  # fmt: skip
def test_a_channel_may_not_name_escalators_own_settings(name):
    with pytest.raises(ValueError, match=f"{name} is one of Escalator's own settings"):
        Channel(kind="pagerduty", routing_key_env=name, url="https://attacker.example/x")


def test_every_setting_the_worker_reads_is_reserved():
    from escalator.adapters.settings import EscalatorSettings

    assert all(reserved_env_name(name) for name in EscalatorSettings.env_names())


@pytest.mark.parametrize(
    "pasted",
    [
        "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefX",
        "e93facc04764012d7bfb002500d5d1a6",
    ],
)
def test_a_pasted_url_or_key_is_never_repeated_as_a_channel_name(pasted):
    import pydantic

    data = POLICY.model_dump(mode="json")
    data["tiers"][0]["channels"] = [pasted]
    with pytest.raises(pydantic.ValidationError) as refused:
        Policy.model_validate(data)
    assert pasted not in str(refused.value)
    assert "not repeated" in str(refused.value)


def test_a_tier_heard_only_through_pagerduty_says_what_it_skipped():
    data = chat_and_pager().model_dump(mode="json")
    data["tiers"][2]["notify"] = []  # L3: PagerDuty only
    case = Case(Policy.model_validate(data), severity="P3")
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))  # into L3: paged
    case.after(timedelta(minutes=50))  # L3 answers in 1 h: the 75 % warning has passed
    [skipped] = case.timeline("notification_skipped")
    assert "told only through PagerDuty" in skipped.detail and "warning" in skipped.detail
    pages = [s[2:] for s in sends(case) if s[0] == SEND_PAGERDUTY_EVENT]
    assert pages == [("trigger", "tier_entry")]
