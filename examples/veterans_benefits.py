"""A benefits-delay ticket at a citizen-service desk, in the classic stage style.

The helpdesk has 48 hours; then the supervisor's office has 72 hours; then the AI
representative agent takes the case as the final stage. A human resolves it.

Run it against a running service (`make run` in another terminal):

    .venv/bin/python examples/veterans_benefits.py
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from escalator.domain.models import CaseInput, Customer
from escalator.domain.policy import Policy


def benefits_policy() -> Policy:
    return (
        Policy.builder("veterans-benefits")
        .add_stage(
            "helpdesk",
            handler="helpdesk_team",
            timeout=timedelta(hours=48),
            notify=["helpdesk@va.example"],
        )
        .add_stage(
            "supervisor",
            handler="supervisor_office",
            timeout=timedelta(hours=72),
            notify=["supervisors@va.example"],
        )
        .add_stage(
            "ai_agent",
            handler="ai_representative",
            timeout=None,
            kind="ai",
            notify=["ai-desk@va.example"],
        )
        .build()
    )


def benefits_case(case_id: str = "123") -> CaseInput:
    return CaseInput(
        case_id=case_id,
        title="Disability benefits payment delayed",
        description="Monthly payment has not arrived for 6 weeks after a change of address.",
        severity="P3",
        customer=Customer(name="Veteran Applicant", email="applicant@example.org"),
        data={"program": "disability-compensation"},
        policy=benefits_policy(),
    )


async def main() -> None:
    from starter import EscalatorClient

    escalator = await EscalatorClient.connect()
    workflow_id = await escalator.start_case(benefits_case())
    status = await escalator.status("123")
    print(f"started {workflow_id}: {status.tier_name} ({status.team}) owns it")
    if status.next_deadline:
        print(f"next: {status.next_deadline.label} at {status.next_deadline.at:%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    asyncio.run(main())
