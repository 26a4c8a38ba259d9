"""How many examples a property test tries.

`make test` (and CI) runs every property with its full count. `make test-unit`, the
fast lane a developer runs between edits, sets ESCALATOR_FAST_LANE=1 and tries a
fifth of them: still real properties that can fail, at a fraction of the time.
"""

from __future__ import annotations

import os

FAST_LANE = os.environ.get("ESCALATOR_FAST_LANE") == "1"


def examples(full: int) -> int:
    return max(20, full // 5) if FAST_LANE else full
