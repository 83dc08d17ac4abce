"""Alert messages for a two-second read, and their Telegram, Slack and plain-text forms.

Every platform gets the same content: a severity marker and a headline saying what happened,
then spot, the distance to the level, the gamma regime, the data time and the rule id. Dynamic
text is escaped per platform, and long messages are cut between blocks (or inside plain text
before escaping), never inside a tag or an entity.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gexbot.core.alerts.buttons import PREFIX, Action, button_data
from gexbot.core.alerts.events import AlertEvent, is_warning
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.language.durations import format_duration
from gexbot.core.language.model import Severity, is_personal
from gexbot.core.language.templates import render_template
from gexbot.core.market.snapshot import regime
from gexbot.core.present.format import fmt_pct, fmt_price
from gexbot.core.present.labels import REGIME_TEXT, level_label

TELEGRAM_LIMIT = 4096  # telegram.constants.MessageLimit.MAX_TEXT_LENGTH
SLACK_SECTION_LIMIT = 3000  # Block Kit section text
SLACK_MAX_BLOCKS = 50

MARKERS = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
RESOLVED_MARKER = "✅"


@dataclass(frozen=True, slots=True)
class Rendered:
    """One alert as text parts, before any platform's markup."""

    marker: str
    headline: str
    details: tuple[str, ...]
    severity: Severity
    # The event rendered, for notifiers that send data rather than text (webhooks).
    event: AlertEvent | None = field(default=None, compare=False)


def _what(e: AlertEvent) -> str:
    """The condition, as a phrase after the symbol."""
    label = level_label(e.level_name)
    level = fmt_price(e.level)
    side = "above" if e.direction == "up" else "below"
    if e.kind == "crosses":
        if e.cause == "level":
            moved = "down" if e.direction == "up" else "up"
            return f"{label} {level} moved {moved} through spot"
        both = " (spot and level both moved)" if e.cause == "both" else ""
        return f"crossed {side} {label} {level}{both}"
    if e.kind == "near":
        dist = abs(e.distance_pct) if e.distance_pct is not None else 0.0
        return f"within {dist:.2f}% of {label} {level}"
    if e.kind in ("above", "below"):
        return f"{e.kind} {label} {level}" if e.level_name[:1].isalpha() else f"{e.kind} {level}"
    if e.kind == "outside":
        return f"outside {label} ({side} {level})"
    if e.kind == "moved":
        way = e.direction or "?"
        return f"{label} moved {way} to {level} (from {fmt_price(e.previous_level)})"
    if e.kind == "rolls_off":
        return f"{label} {level}: {_roll_off(e)}"
    return e.message or e.kind


def _roll_off(e: AlertEvent) -> str:
    """`42% of its gamma settles at 08:00 UTC, in 1h50m; the wall is likely to move`."""
    share = f"{e.share * 100:.0f}%" if e.share is not None else "much"
    if e.settles_in is None or e.computed_at is None:
        return f"{share} of its gamma settles at the next expiry; the wall is likely to move"
    at = (e.computed_at + timedelta(seconds=e.settles_in)).strftime("%H:%M UTC")
    return (
        f"{share} of its gamma settles at {at}, in {format_duration(e.settles_in)}; "
        "the wall is likely to move"
    )


def _fields(e: AlertEvent) -> dict[str, str]:
    return {
        "rule": e.rule_id,
        "symbol": e.symbol,
        "level_name": level_label(e.level_name),
        "level": fmt_price(e.level),
        "spot": fmt_price(e.spot),
        "distance_pct": fmt_pct(e.distance_pct),
        "direction": e.direction or "",
        "severity": e.severity.value,
        "computed_at": e.computed_at.strftime("%H:%M:%S UTC") if e.computed_at else "unknown",
    }


def render(e: AlertEvent) -> Rendered:
    """The text parts of one alert or warning."""
    if is_warning(e.rule_id):
        return Rendered(MARKERS[e.severity], e.message or e.kind, (), e.severity, e)
    headline = render_template(e.message, _fields(e)) if e.message else f"{e.symbol} {_what(e)}"
    if e.after_gap:
        headline += " (across a data gap)"
    marker = MARKERS[e.severity]
    if e.reason is NotifyReason.RESOLVED:
        headline, marker = f"Resolved: {headline}, no longer true", RESOLVED_MARKER
    elif e.reason is NotifyReason.REPEAT:
        headline = f"Still: {headline}"
    parts = [f"spot {fmt_price(e.spot)}"]
    if e.distance_pct is not None and e.level is not None:
        where = "above" if e.distance_pct > 0 else "below"
        parts.append(f"level {abs(e.distance_pct):.2f}% {where}")
    if e.hvl is not None and e.spot is not None:
        parts.append(REGIME_TEXT[regime(e.spot, e.hvl)])
    data_time = e.computed_at.strftime("%H:%M:%S UTC") if e.computed_at else "unknown"
    origin = f" · source: {e.source}" if e.source else ""
    source = f"alert {e.rule_id}" if is_personal(e.rule_id) else f"rule {e.rule_id}"
    details: tuple[str, ...] = (" · ".join(parts), f"data {data_time}{origin} · {source}")
    if e.once:
        details += (f"alert {e.rule_id} was set to fire once and is now deleted",)
    return Rendered(marker, headline, details, e.severity, e)


def _title(items: Sequence[Rendered]) -> str | None:
    return None if len(items) == 1 else f"{len(items)} alerts"


# -- plain text (console, Slack fallback) ------------------------------------------------------


def plain_text(items: Sequence[Rendered]) -> str:
    """Every alert as plain text, one block each."""
    blocks = [f"{r.marker} {r.headline}" + "".join(f"\n   {d}" for d in r.details) for r in items]
    title = _title(items)
    return "\n".join([title, *blocks] if title else blocks)


# -- Telegram HTML -------------------------------------------------------------------------------


def _tg_block(r: Rendered, budget: int) -> str:
    esc = html.escape
    tail = "".join(f"\n{esc(d)}" for d in r.details[:-1])
    if r.details:
        tail += f"\n<i>{esc(r.details[-1])}</i>"
    headline = r.headline
    block = f"<b>{esc(r.marker)} {esc(headline)}</b>{tail}"
    while len(block) > budget and headline:
        # Cut the plain text, then escape: a cut can never split an entity or a tag.
        headline = headline[: max(0, len(headline) - (len(block) - budget) - 1)]
        block = f"<b>{esc(r.marker)} {esc(headline)}…</b>{tail}"
    return block if len(block) <= budget else block[:0]


def telegram_reply_html(text: str, *, monospace: bool, limit: int = TELEGRAM_LIMIT) -> str:
    """A chat reply as Telegram HTML within `limit`: the plain text is cut before it is
    escaped, so a cut never splits an entity (`&amp;`) or leaves a `<pre>` unclosed."""
    wrap = "<pre>{}</pre>" if monospace else "{}"
    out = wrap.format(html.escape(text))
    while len(out) > limit and text:
        text = text[: max(0, len(text) - (len(out) - limit) - 1)]
        out = wrap.format(html.escape(text) + "…")
    return out


def telegram_html(items: Sequence[Rendered], limit: int = TELEGRAM_LIMIT) -> str:
    """One Telegram message (parse mode HTML) for one or several alerts, within `limit`."""
    title = _title(items)
    out = f"<b>{html.escape(title)}</b>\n\n" if title else ""
    for i, r in enumerate(items):
        rest = len(items) - i - 1
        reserve = len(f"\n\n… and {rest} more") if rest else 0
        sep = "\n\n" if i else ""
        block = _tg_block(r, limit - len(out) - len(sep) - reserve)
        if not block:
            return out + f"\n\n… and {len(items) - i} more"
        out += sep + block
    return out


# -- Slack Block Kit ------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """`text` safe in Slack mrkdwn: its three control characters as entities."""
    # Slack mrkdwn control characters (api.slack.com/reference/surfaces/formatting#escaping).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(items: Sequence[Rendered]) -> tuple[str, list[dict[str, object]]]:
    """Fallback text and Block Kit blocks for one or several alerts."""
    blocks: list[dict[str, object]] = []
    title = _title(items)
    if title:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": title}})
    shown = items[: (SLACK_MAX_BLOCKS - 2) // 2]
    for r in shown:
        head = slack_escape(f"{r.marker} {r.headline}")
        body = "\n".join(slack_escape(d) for d in r.details[:-1])
        text = f"*{head}*" + (f"\n{body}" if body else "")
        if len(text) > SLACK_SECTION_LIMIT:
            keep = SLACK_SECTION_LIMIT - len(f"*{head}*") - 1
            text = (
                f"*{head[: SLACK_SECTION_LIMIT - 3]}*" if keep < 0 else f"*{head}*\n{body[:keep]}"
            )
            text = text[: SLACK_SECTION_LIMIT - 1] + "…"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        if r.details:
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": slack_escape(r.details[-1])}],
                }
            )
    if len(items) > len(shown):
        more = f"… and {len(items) - len(shown)} more"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    fallback = "; ".join(f"{r.marker} {r.headline}" for r in items)
    if title:
        fallback = f"{title}: {fallback}"
    return fallback[:3000], blocks


# -- Discord embeds -------------------------------------------------------------------------------

DISCORD_CONTENT_LIMIT = 2000
DISCORD_MAX_EMBEDS = 10
DISCORD_TITLE_LIMIT = 256
DISCORD_DESCRIPTION_LIMIT = 4096
DISCORD_FOOTER_LIMIT = 2048
DISCORD_EMBEDS_TOTAL = 6000  # characters over every embed of one message
DISCORD_COLOURS = {Severity.CRITICAL: 0xE5484D, Severity.WARNING: 0xF59E0B, Severity.INFO: 0x3B82F6}
DISCORD_RESOLVED_COLOUR = 0x22C55E
#: Nothing in a message may ping anyone: templates and symbols are user text.
NO_MENTIONS: dict[str, object] = {"parse": []}
_DISCORD_MARKDOWN = str.maketrans({c: f"\\{c}" for c in "\\*_~`|"})


def _discord_escape(text: str) -> str:
    return text.translate(_DISCORD_MARKDOWN)


def cut_text(text: str, limit: int) -> str:
    """At most `limit` characters, never ending in half an escape."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if (len(head) - len(head.rstrip("\\"))) % 2:
        head = head[:-1]
    return head + "…"


def _embed(r: Rendered) -> dict[str, object]:
    embed: dict[str, object] = {
        "title": cut_text(_discord_escape(f"{r.marker} {r.headline}"), DISCORD_TITLE_LIMIT),
        "color": DISCORD_RESOLVED_COLOUR
        if r.marker == RESOLVED_MARKER
        else DISCORD_COLOURS[r.severity],
    }
    body = "\n".join(_discord_escape(d) for d in r.details[:-1])
    if body:
        embed["description"] = cut_text(body, DISCORD_DESCRIPTION_LIMIT)
    if r.details:
        embed["footer"] = {"text": cut_text(r.details[-1], DISCORD_FOOTER_LIMIT)}  # plain text
    if r.event is not None and r.event.computed_at is not None:
        embed["timestamp"] = r.event.computed_at.isoformat()  # the data time, shown local
    return embed


def _embed_size(embed: dict[str, object]) -> int:
    footer = embed.get("footer")
    footer_text = footer.get("text", "") if isinstance(footer, dict) else ""
    return sum(len(str(embed.get(k, ""))) for k in ("title", "description")) + len(footer_text)


CHART_FILE = "levels.png"


def discord_chart_message(title: str) -> dict[str, object]:
    """A message showing the attached chart file (sent as multipart with it)."""
    image = {"url": f"attachment://{CHART_FILE}"}
    return {
        "embeds": [{"title": title[:DISCORD_TITLE_LIMIT], "image": image}],
        "allowed_mentions": NO_MENTIONS,
    }


def discord_message(items: Sequence[Rendered]) -> dict[str, object]:
    """One Discord message body: an embed per alert (colour by severity, the data time), a
    plain `content` fallback, and mentions disabled, within Discord's limits."""
    embeds: list[dict[str, object]] = []
    budget = DISCORD_EMBEDS_TOTAL
    for r in items:
        embed = _embed(r)
        size = _embed_size(embed)
        if len(embeds) == DISCORD_MAX_EMBEDS - 1 and len(items) > DISCORD_MAX_EMBEDS:
            break  # the last slot says how many more
        if size > budget:
            break
        embeds.append(embed)
        budget -= size
    if len(embeds) < len(items):
        embeds.append({"title": f"… and {len(items) - len(embeds)} more", "color": 0x6B7280})
    title = _title(items)
    lines = "; ".join(f"{r.marker} {r.headline}" for r in items)
    content = _discord_escape(f"{title}: {lines}" if title else lines)
    return {
        "content": cut_text(content, DISCORD_CONTENT_LIMIT),
        "embeds": embeds,
        "allowed_mentions": NO_MENTIONS,
    }


def _split(actions: Sequence[Action]) -> tuple[list[Action], list[Action]]:
    """An alert's buttons, and the mutes beyond the snooze that go in a `Mute…` menu."""
    menu: list[Action] = [a for a in actions if a.mutes and a is not Action.SNOOZE]
    return [a for a in actions if a not in menu], menu


def slack_buttons(token: str, actions: Sequence[Action]) -> dict[str, Any]:
    """An alert's buttons as a Block Kit `actions` block: Snooze, a `Mute…` menu, Chart,
    Levels, and Delete (asking first). Each carries only `gx1:TOKEN:ACTION`."""
    buttons, menu = _split(actions)
    elements = [_slack_button(a, button_data(token, a)) for a in buttons]
    if menu:
        select = {
            "type": "static_select",
            "action_id": "gx_mute",
            "placeholder": {"type": "plain_text", "text": "Mute…"},
            "options": [
                {
                    "text": {"type": "plain_text", "text": _MUTE_OPTIONS[m]},
                    "value": button_data(token, m),
                }
                for m in menu
            ],
        }
        elements.insert(1, select)  # beside the snooze
    return {"type": "actions", "block_id": "gx_buttons", "elements": elements}


_MUTE_OPTIONS = {
    Action.MUTE_4H: "4 hours",
    Action.MUTE_1D: "1 day",
    Action.MUTE_TOMORROW: "until 08:00 UTC tomorrow",
}


def _slack_button(action: Action, value: str) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"gx_{action.value}",
        "text": {"type": "plain_text", "text": action.label},
        "value": value,
    }
    if action is Action.DELETE:
        button["style"] = "danger"
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Delete this alert?"},
            "text": {"type": "plain_text", "text": "It stops for good; /alert makes a new one."},
            "confirm": {"type": "plain_text", "text": "Delete"},
            "deny": {"type": "plain_text", "text": "Keep"},
        }
    return button


def discord_components(token: str, actions: Sequence[Action]) -> list[dict[str, Any]]:
    """An alert's buttons as Discord message components: a row of buttons (Snooze, Chart,
    Levels, Delete) and a row with the `Mute…` menu. Each carries only `gx1:TOKEN:ACTION`."""
    style = {Action.SNOOZE: 1, Action.DELETE: 4}
    buttons, menu = _split(actions)
    keys = [
        {
            "type": 2,
            "style": style.get(a, 2),
            "label": a.label,
            "custom_id": button_data(token, a),
        }
        for a in buttons
    ]
    rows: list[dict[str, Any]] = [{"type": 1, "components": keys}]
    if menu:
        select = {
            "type": 3,
            "custom_id": f"{PREFIX}:{token}:menu",
            "placeholder": "Mute…",
            "options": [{"label": _MUTE_OPTIONS[m], "value": button_data(token, m)} for m in menu],
        }
        rows.append({"type": 1, "components": [select]})
    return rows
