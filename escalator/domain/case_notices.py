"""What leaves a case: the facts a notification carries, and the assessment request.

Structured facts only, never rendered text: wording lives in the activities
(escalator/domain/notification_text.py), so changing a template never changes a
workflow's history. Both are bounded (escalator/domain/limits.py) however long
the case has run.
"""

from __future__ import annotations

from datetime import datetime

from escalator.domain import assessment as ai
from escalator.domain import limits
from escalator.domain.case_view import breach_deadline, tier_of, tier_ref
from escalator.domain.models import CaseBrief, CaseInput, CaseState, Notification
from escalator.domain.models import NotificationPurpose as Purpose
from escalator.domain.policy import Tier


def notification(
    state: CaseState,
    case: CaseInput,
    purpose: Purpose,
    *,
    number: int,
    now: datetime,
    recipients: tuple[str, ...],
    webhook: str | None,
    from_tier: Tier | None,
    channel: str | None,
) -> Notification:
    """Notification `number` of the case. Its Message-ID is stable per (case, event):
    retries and replays reuse it, so the receiving side can spot a duplicate."""
    return Notification(
        message_id=f"<{case.case_id}.{number}.{purpose}@escalator>",
        purpose=purpose,
        case=CaseBrief(
            case_id=case.case_id,
            title=case.title,
            severity=state.severity,
            account=case.account,
            description_excerpt=shorten(case.description, limits.DESCRIPTION_EXCERPT_CHARS),
            customer_name=case.customer.name if case.customer else None,
        ),
        tier=tier_ref(tier_of(state, case)),
        from_tier=tier_ref(from_tier) if from_tier else None,
        # The newest few, and how many there are: mail needs no more.
        escalations=state.escalations[-limits.NOTIFICATION_ESCALATIONS :],
        escalations_total=state.escalations_total,
        notes=tuple(
            note.model_copy(update={"text": shorten(note.text, limits.NOTIFICATION_NOTE_CHARS)})
            for note in state.notes[-limits.NOTIFICATION_NOTES :]
        ),
        notes_total=state.notes_total,
        deadline=breach_deadline(state, case),
        assessment=state.assessment,
        occurred_at=now,
        recipients=recipients,
        webhook=webhook,
        channel=channel,
    )


def assessment_request(state: CaseState, case: CaseInput) -> ai.AssessmentRequest:
    """The case as the tier it just reached sees it, cut to what the prompt can send."""
    tier = tier_of(state, case)
    request = ai.AssessmentRequest(
        case_id=case.case_id,
        title=case.title,
        description=case.description,
        severity=state.severity,
        account=case.account,
        data=case.data,
        customer_name=case.customer.name if case.customer else None,
        notes=state.notes,
        notes_omitted=state.notes_total - len(state.notes),
        escalations=state.escalations,
        escalations_omitted=state.escalations_total - len(state.escalations),
        tier=tier_ref(tier),
        tier_capabilities=tier.capabilities,
        purpose="ai_stage" if tier.kind == "ai" else "escalation",
    )
    return ai.trimmed_for_prompt(request)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
