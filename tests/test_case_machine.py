"""The case engine's invariants, under any order of events hypothesis can find.

A state machine drives one case through random messages from random people and
random waits, and after every step checks what must always hold: a breach is
never forgotten, at most one claim wins, every notification has its own
Message-ID, no deadline is left behind once time has passed, and a refused
message changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from examples_budget import examples
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from support import DEFAULT_POLICY, policy_with

from escalator.domain import case as engine
from escalator.domain import case_view
from escalator.domain.models import (
    Actor,
    AddNoteRequest,
    CaseInput,
    ClaimRequest,
    Customer,
    DeescalateRequest,
    EscalateRequest,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
)
from escalator.domain.policy import SEVERITIES, Policy

T0 = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # a Friday afternoon


OFFICE = {"timezone": "Europe/Berlin", "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed")}}
POLICIES = [
    DEFAULT_POLICY,
    policy_with(
        reopen_window="1d",
        max_hold="3h",
        max_bounces=2,
        tier_changes={1: {"stale_after": "30m"}, 3: {"repeat_every": "20m", "max_repeats": 3}},
    ),
    policy_with(calendar=OFFICE, warn_at=[0.5, 0.9], reopen_window="2h"),
]
USERS = st.sampled_from(["alice", "bob", "root"])
ROLES = st.sampled_from(["engineer", "engineer", "admin", "viewer", "customer"])
NOTE = {"reason": "needs the next tier", "steps_taken": ["restarted it"]}


class CaseMachine(RuleBasedStateMachine):
    @initialize(policy=st.sampled_from(POLICIES), severity=st.sampled_from(SEVERITIES))
    def open(self, policy: Policy, severity: str) -> None:
        customer = Customer(name="Ana", email="ana@example.com")
        self.case = CaseInput(
            case_id="m-1", title="t", severity=severity, policy=policy, customer=customer
        )
        self.now = T0
        self.state = engine.new_state(self.case, self.now)
        self.message_ids: set[tuple[str, str]] = set()
        self.breached = False
        self._take(engine.open_case(self.state, self.case, self.now))

    def _take(self, step: engine.Step) -> str:
        self.state = step.state
        for effect in step.effects:
            if isinstance(effect, engine.Deliver):
                key = (effect.activity, effect.notification.message_id)
                assert key not in self.message_ids, f"Message-ID used twice: {key}"
                self.message_ids.add(key)
        if self.state.phase == "resolved" and self.state.reopen_until is None:
            self.state = engine.reopen_window_opened(self.state, self.case)
        return step.answer

    def _try(self, action, request) -> str | None:
        before = self.state
        snapshot = before.model_dump()
        try:
            return self._take(action(self.state, self.case, request, self.now))
        except engine.Refused as refused:
            assert refused.reason
            assert self.state is before and before.model_dump() == snapshot
            return None

    # -- time passes

    @rule(minutes=st.integers(min_value=1, max_value=12 * 60))
    def wait(self, minutes: int) -> None:
        until = self.now + timedelta(minutes=minutes)
        self._take(engine.advance(self.state, self.case, self.now, until))
        self.now = until
        deadline = case_view.next_deadline(self.state, self.case)
        assert deadline is None or deadline.at > self.now, "a due deadline was left behind"

    # -- people act

    @rule(users=st.lists(USERS, min_size=2, max_size=3), role=ROLES)
    def claims_race(self, users: list[str], role: str) -> None:
        winners = []
        for user in users:
            answer = self._try(engine.claim, ClaimRequest(actor=Actor(user=user, role=role)))
            if answer == "claimed":
                winners.append(user)
        assert len(winners) <= 1, f"two claims won: {winners}"

    @rule(user=USERS, role=ROLES)
    def escalate(self, user: str, role: str) -> None:
        self._try(engine.escalate, EscalateRequest(actor=Actor(user=user, role=role), note=NOTE))

    @rule(user=USERS, role=ROLES, level=st.none() | st.integers(min_value=1, max_value=3))
    def deescalate(self, user: str, role: str, level: int | None) -> None:
        request = DeescalateRequest(
            actor=Actor(user=user, role=role), reason="back", to_level=level
        )
        self._try(engine.deescalate, request)

    @rule(user=USERS, role=ROLES, text=st.text(min_size=1, max_size=40))
    def add_note(self, user: str, role: str, text: str) -> None:
        self._try(engine.add_note, AddNoteRequest(actor=Actor(user=user, role=role), text=text))

    @rule(user=USERS, role=ROLES, hours=st.none() | st.integers(min_value=1, max_value=30))
    def hold(self, user: str, role: str, hours: int | None) -> None:
        until = self.now + timedelta(hours=hours) if hours else None
        request = HoldRequest(actor=Actor(user=user, role=role), reason="waiting", until=until)
        self._try(engine.hold, request)

    @rule(user=USERS, role=ROLES)
    def resume(self, user: str, role: str) -> None:
        self._try(engine.resume, ResumeRequest(actor=Actor(user=user, role=role)))

    @rule(user=USERS, role=ROLES, severity=st.sampled_from(SEVERITIES))
    def set_severity(self, user: str, role: str, severity: str) -> None:
        request = SetSeverityRequest(actor=Actor(user=user, role=role), severity=severity)
        self._try(engine.set_severity, request)

    @rule(user=USERS, role=ROLES)
    def resolve(self, user: str, role: str) -> None:
        self._try(engine.resolve, ResolveRequest(actor=Actor(user=user, role=role)))

    @precondition(lambda self: self.state.phase == "resolved")
    @rule(user=USERS, role=ROLES)
    def reopen(self, user: str, role: str) -> None:
        self._try(engine.reopen, ReopenRequest(actor=Actor(user=user, role=role)))

    # -- what always holds

    @invariant()
    def a_breach_is_never_forgotten(self) -> None:
        self.breached = self.breached or self.state.sla_breached
        assert self.state.sla_breached == self.breached

    @invariant()
    def the_case_is_consistent(self) -> None:
        state = self.state
        assert state.tier_level in {t.level for t in self.case.policy.tiers}
        if state.phase != "resolved":  # a resolved case keeps who had it
            assert (state.phase == "claimed") == (state.assignee is not None)
        assert (state.hold is None) == (state.running_since is not None)
        assert state.timeline_total >= len(state.timeline)
        assert state.notes_total >= len(state.notes)
        assert state.escalated_up <= state.escalations_total
        assert state.notifications_sent >= len({i for _, i in self.message_ids})


TestCaseMachine = CaseMachine.TestCase
TestCaseMachine.settings = settings(
    max_examples=examples(100), stateful_step_count=40, deadline=None
)
