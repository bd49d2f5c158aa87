"""Tools of the support example (found because they sit next to the workflow file)."""


def lookup_order(order_id: str) -> dict[str, str]:
    """Look an order up by its number."""
    return {"order_id": order_id, "status": "shipped"}


def refund(order_id: str, reason: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}: {reason}"
