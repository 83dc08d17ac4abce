"""The webhook payload, version 1 (described by docs/webhook.schema.json).

One POST carries one event, so a receiver can key on `id` (also the `Idempotency-Key` header):
it is derived from the outbox row (alert key, notification number, channel), so every retry of
one delivery, in this process or after a restart, carries the same id.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from gexbot.core.alerts.events import AlertEvent, is_warning
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.present.render import Rendered, plain_text

WEBHOOK_VERSION = 1


class PayloadKind(StrEnum):
    """What a webhook body announces."""

    ALERT = "alert"  # a rule fired (or reminds: `reason` is repeat)
    RESOLVED = "resolved"  # a rule's condition cleared and it asks for `resolve`
    WARNING = "warning"  # one of the bot's own warnings (feed, symbols, delivery, rules)
    RECOVERY = "recovery"  # that warning cleared


def payload_kind(event: AlertEvent) -> PayloadKind:
    """Alert, resolved notice, warning or recovery."""
    resolved = event.reason is NotifyReason.RESOLVED
    if is_warning(event.rule_id):
        return PayloadKind.RECOVERY if resolved else PayloadKind.WARNING
    return PayloadKind.RESOLVED if resolved else PayloadKind.ALERT


def delivery_id(alert_key: str, seq: int, channel: str) -> str:
    """The id of one delivery: the same for every attempt at it, unique across deliveries."""
    digest = hashlib.sha256(f"{alert_key}\x1f{seq}\x1f{channel}".encode()).hexdigest()
    return f"gxb_{digest[:32]}"


def webhook_body(event: AlertEvent, rendered: Rendered, *, id_: str) -> dict[str, Any]:
    """The JSON object POSTed for `event` (field by field in docs/webhook.schema.json)."""
    warning = is_warning(event.rule_id)
    return {
        "version": WEBHOOK_VERSION,
        "id": id_,
        "kind": payload_kind(event).value,
        "reason": event.reason.value,
        "rule": event.rule_id,
        "symbol": event.symbol or None,
        "severity": event.severity.value,
        "condition": None if warning else (event.kind or None),
        "warning": event.kind if warning else None,
        "level": ({"name": event.level_name, "value": event.level} if event.level_name else None),
        "previous_level": event.previous_level,
        "spot": event.spot,
        "distance_pct": event.distance_pct,
        "direction": event.direction,
        "cause": event.cause,
        "hvl": event.hvl,
        "computed_at": event.computed_at.isoformat() if event.computed_at else None,
        "decided_at": event.at.isoformat(),
        "after_gap": event.after_gap,
        "source": None if warning else (event.source or "BackQuant"),
        # Charts are not sent to webhooks (a PNG does not fit a JSON body): this says whether
        # the rule asked for one; `gexbot chart SYMBOL` draws the same picture.
        "chart": {"requested": event.chart, "included": False},
        "title": f"{rendered.marker} {rendered.headline}",
        "text": plain_text([rendered]),
    }
