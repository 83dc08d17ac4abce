"""Message content and platform formatting: headlines, escaping, safe truncation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexbot.core.alert import NotifyReason
from gexbot.core.events import AlertEvent
from gexbot.core.render import plain_text, render, slack_message, telegram_html
from gexbot.core.rules import Severity
from tests.rulekit import alert_event

AT = datetime(2026, 11, 24, 12, 0, 3, tzinfo=UTC)


def event(**kw: Any) -> AlertEvent:
    """The tests' alert event, as these rendering cases were written against."""
    base: dict[str, Any] = {
        "key": "k",
        "rule_id": "r",
        "severity": Severity.WARNING,
        "at": AT,
        "computed_at": AT,
    }
    return alert_event(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "headline"),
    [
        ({}, "BTCUSDT crossed above HVL 67,000"),
        ({"direction": "down"}, "BTCUSDT crossed below HVL 67,000"),
        ({"cause": "level", "direction": "up"}, "BTCUSDT HVL 67,000 moved down through spot"),
        ({"cause": "both"}, "BTCUSDT crossed above HVL 67,000 (spot and level both moved)"),
        (
            {
                "kind": "near",
                "level_name": "call_resistance",
                "level": 70000.0,
                "distance_pct": 0.4,
            },
            "BTCUSDT within 0.40% of call resistance 70,000",
        ),
        (
            {"kind": "below", "level_name": "put_support", "level": 78000.0},
            "BTCUSDT below put support 78,000",
        ),
        ({"kind": "above", "level_name": "70000", "level": 70000.0}, "BTCUSDT above 70,000"),
        (
            {"kind": "outside", "level_name": "expected_move_1sd", "level": 83258.5},
            "BTCUSDT outside the 1σ expected move (above 83,258.5)",
        ),
        (
            {
                "kind": "moved",
                "level_name": "call_resistance",
                "level": 86000.0,
                "previous_level": 85000.0,
            },
            "BTCUSDT call resistance moved up to 86,000 (from 85,000)",
        ),
        ({"reason": NotifyReason.REPEAT}, "Still: BTCUSDT crossed above HVL 67,000"),
        (
            {"kind": "below", "level_name": "put_support", "reason": NotifyReason.RESOLVED},
            "Resolved: BTCUSDT below put support 67,000, no longer true",
        ),
        (
            {"message": "{symbol} {direction} through {level_name} {level} ({distance_pct})"},
            "BTCUSDT up through HVL 67,000 (-0.32%)",
        ),
    ],
)
def test_headlines_say_what_happened(kw: dict[str, Any], headline: str) -> None:
    assert render(event(**kw)).headline == headline


def test_details_carry_spot_distance_regime_time_and_rule() -> None:
    r = render(event(spot=67213.5, hvl=67500.0))
    assert r.details == (
        "spot 67,213.5 · level 0.32% below · below HVL: moves amplified",
        "data 12:00:03 UTC · rule r",
    )
    assert r.marker == "🟠"
    assert render(event(severity=Severity.CRITICAL)).marker == "🔴"
    assert render(event(reason=NotifyReason.RESOLVED)).marker == "✅"


def test_symbols_are_written_as_the_api_spells_them() -> None:
    assert render(event()).headline.startswith("BTCUSDT ")
    assert "BTCUSDT" in plain_text([render(event())])


def test_warnings_render_their_own_text() -> None:
    w = event(rule_id="warning:missing", message="SOLUSDT has been missing for 2m")
    assert render(w).headline == "SOLUSDT has been missing for 2m"
    assert render(w).details == ()


class _Checker(HTMLParser):
    ALLOWED = frozenset({"b", "i"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        assert tag in self.ALLOWED, tag
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag


def _assert_valid_telegram_html(text: str) -> None:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []
    # Every & starts a complete entity (Telegram rejects a cut one).
    for m in re.finditer("&", text):
        assert re.match(r"&(amp|lt|gt|quot|#x27);", text[m.start() :]), text[
            m.start() : m.start() + 8
        ]


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.text(alphabet="<>&\"'ab /é🔴", max_size=900), min_size=1, max_size=12),
    limit=st.integers(min_value=200, max_value=4096),
)
def test_telegram_messages_fit_and_are_never_cut_inside_a_tag_or_entity(
    messages: list[str], limit: int
) -> None:
    items = [render(event(message=m.replace("{", "").replace("}", "") or "x")) for m in messages]
    text = telegram_html(items, limit=limit)
    assert len(text) <= limit
    _assert_valid_telegram_html(text)


def test_slack_blocks_stay_within_block_kit_limits() -> None:
    items = [render(event(message="<&>" * 1500)) for _ in range(40)]
    text, blocks = slack_message(items)
    assert len(blocks) <= 50
    assert len(text) <= 3000
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000  # type: ignore[index]
    assert blocks[-1]["elements"][0]["text"].endswith("more")  # type: ignore[index]
