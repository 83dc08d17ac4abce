"""Message content and platform formatting: headlines, escaping, safe truncation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexbot.core.alerts.events import AlertEvent
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.language.model import Severity
from gexbot.core.market.snapshot import Level
from gexbot.core.present.labels import LABELS, level_label
from gexbot.core.present.render import (
    plain_text,
    render,
    slack_escape,
    slack_message,
    telegram_html,
    telegram_reply_html,
)
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
    ALLOWED = frozenset({"b", "i", "pre"})

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


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="<>&\"'ab \n/é", max_size=5000),
    monospace=st.booleans(),
    limit=st.integers(min_value=50, max_value=4096),
)
def test_a_chat_reply_is_cut_before_it_is_escaped(text: str, monospace: bool, limit: int) -> None:
    out = telegram_reply_html(text, monospace=monospace, limit=limit)
    assert len(out) <= limit
    _assert_valid_telegram_html(out)
    assert out.startswith("<pre>") == monospace


def test_a_reply_that_fits_is_only_escaped() -> None:
    assert telegram_reply_html("a < b & c", monospace=True) == "<pre>a &lt; b &amp; c</pre>"
    assert slack_escape("<@U1> & co") == "&lt;@U1&gt; &amp; co"


def test_every_level_has_one_name_everywhere() -> None:
    assert set(LABELS) == set(Level)
    assert level_label("call_resistance") == "call resistance"
    assert level_label("expected_move_1sd") == "the 1σ expected move"
    assert level_label("no_such_level") == "no_such_level"
    # Only the first letter is raised when a table row starts with a name.
    assert LABELS[Level.HVL].title() == "HVL"
    assert LABELS[Level.ODTE_CALL_RESISTANCE].title(short=True) == "0DTE call"
    assert LABELS[Level.EM_UPPER_1SD].title() == "Expected move +1σ"


def test_slack_blocks_stay_within_block_kit_limits() -> None:
    items = [render(event(message="<&>" * 1500)) for _ in range(40)]
    text, blocks = slack_message(items)
    assert len(blocks) <= 50
    assert len(text) <= 3000
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000  # type: ignore[index]
    assert blocks[-1]["elements"][0]["text"].endswith("more")  # type: ignore[index]
