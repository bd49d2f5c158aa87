"""Tools of the ``support_triage`` recipe: order tracking and billing, over sample data.

In your shop these call your order system; here they read the dictionaries below so the recipe
runs anywhere. Unknown numbers raise :class:`~atdak_agents.exceptions.ModelRetry`, which the
agent sees as a tool result it can act on (ask the customer, try another number).
"""

from __future__ import annotations

import hashlib
from typing import Any

from atdak_agents.exceptions import ModelRetry
from atdak_agents.tools import tool

ORDERS: dict[str, dict[str, Any]] = {
    "10423": {
        "customer": "C-1088",
        "items": ["Harbor desk lamp × 2"],
        "status": "held at sorting centre",
        "carrier": "SF Express",
        "tracking": "SF1420539981",
        "events": [
            "2024-05-06 09:12 picked up, Shanghai",
            "2024-05-06 22:40 arrived at Hangzhou sorting centre",
            "2024-05-07 08:05 held: address label damaged, awaiting re-label",
        ],
    },
    "10431": {
        "customer": "C-2231",
        "items": ["Oak standing desk"],
        "status": "delivered",
        "carrier": "JD Logistics",
        "tracking": "JDX000231889",
        "events": ["2024-05-05 16:20 delivered, signed by customer"],
    },
}

INVOICES: dict[str, dict[str, Any]] = {
    "INV-2024-0311": {
        "customer": "C-1088",
        "lines": [
            {"item": "Ergo mesh chair", "amount": 1299.0},
            {"item": "Shipping", "amount": 120.0},
            {"item": "Shipping", "amount": 120.0},
        ],
        "total": 1539.0,
        "paid": True,
    },
}


def _order_number(order_id: str) -> str:
    return order_id.strip().lstrip("#").strip()


@tool(timeout=5)
def track_order(order_id: str) -> dict[str, Any]:
    """Where an order is: status, carrier, tracking number and its latest events.

    Args:
        order_id: The order number, digits only, e.g. "10423".
    """
    order = ORDERS.get(_order_number(order_id))
    if order is None:
        raise ModelRetry(f"no order {order_id!r}; ask the customer to check the order number")
    return order


@tool(timeout=5)
def lookup_invoice(invoice_no: str) -> dict[str, Any]:
    """An invoice with its lines, total and payment state.

    Args:
        invoice_no: The invoice number, e.g. "INV-2024-0311".
    """
    invoice = INVOICES.get(invoice_no.strip().upper())
    if invoice is None:
        raise ModelRetry(f"no invoice {invoice_no!r}; invoice numbers look like INV-2024-0311")
    return invoice


@tool(timeout=5)
def request_refund(invoice_no: str, amount: float, reason: str) -> dict[str, Any]:
    """Open a refund request for part of an invoice (a person in billing approves it).

    Args:
        invoice_no: The invoice to refund from.
        amount: The amount in CNY; at most the invoice total.
        reason: Why, in a few words (shown to the billing team).
    """
    invoice = INVOICES.get(invoice_no.strip().upper())
    if invoice is None:
        raise ModelRetry(f"no invoice {invoice_no!r}")
    if not 0 < amount <= invoice["total"]:
        raise ModelRetry(f"amount must be between 0 and the invoice total {invoice['total']}")
    digest = hashlib.sha256(f"{invoice_no}:{amount}:{reason}".encode()).hexdigest()[:6]
    return {"ticket": f"RF-{digest.upper()}", "status": "pending approval", "eta_days": 3}
