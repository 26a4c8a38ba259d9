"""Escalator: durable escalation workflows on Temporal."""

# escalator.models and escalator.assessment refer to each other (a case's status
# carries its assessment; an assessment request carries case notes). Importing
# models first, whichever submodule is asked for, keeps that order fixed.
import escalator.models  # noqa: F401
