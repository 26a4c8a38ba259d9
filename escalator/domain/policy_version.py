"""A policy's version: `<name>@<12 hex>`, the same for the same rules wherever they come from.

The hex is the start of the SHA-256 of the policy's canonical JSON: its fields as
the snapshot stores them (`model_dump(mode="json")`), without the fields left at
their defaults, with sorted keys and no blanks. So YAML comments, the order of keys
or tiers in a file, and a field a later release adds with a default never change
the version of an unchanged policy; any change to what a case runs by does.

Pure and stdlib-only: the workflow computes it in its sandbox (the `PolicyVersion`
search attribute), and the ledger stores it with each case's fact row.
"""

from __future__ import annotations

import hashlib
import json

from escalator.domain.policy import Policy

VERSION_HEX = 12  # hex digits kept: 48 bits, plenty to tell a desk's policies apart


def canonical_json(policy: Policy) -> str:
    fields = policy.model_dump(mode="json", exclude_defaults=True)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


# The last policy asked about, and its version. A case asks for its own policy's
# version at every publish, and the simulator for its one policy in every case, so
# remembering one (by identity: a policy is never changed once made) saves nearly
# all the hashing. One tuple, replaced whole, so threads never see half of it.
_last: tuple[Policy, str] | None = None


def policy_version(policy: Policy) -> str:
    """`<name>@<12 hex>`, e.g. `default@3f2a9c01b7de`."""
    global _last
    last = _last
    if last is not None and last[0] is policy:
        return last[1]
    digest = hashlib.sha256(canonical_json(policy).encode("utf-8")).hexdigest()
    version = f"{policy.name}@{digest[:VERSION_HEX]}"
    _last = (policy, version)
    return version
