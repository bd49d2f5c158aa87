"""Function nodes of the ``approval`` recipe. In your system ``issue_refund`` would call the
payment provider; here it writes a receipt, so the recipe runs anywhere."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def auto_approve(state: Mapping[str, Any]) -> dict[str, str]:
    """Small, low-risk requests need no person."""
    return {"decision": "approve", "decided_by": "policy (small and low risk)"}


def by_manager(state: Mapping[str, Any]) -> dict[str, str]:
    """Record that a person decided (the human node wrote ``decision``)."""
    return {"decided_by": "manager"}


def issue_refund(inputs: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Issue the refund (here: a receipt whose id is derived from the run id)."""
    digest = hashlib.sha256(context.env.run_id.encode()).hexdigest()[:8].upper()
    return {
        "receipt": {
            "refund_id": f"RF-{digest}",
            "amount": inputs["amount"],
            "currency": "CNY",
            "to": "original payment method",
        }
    }
