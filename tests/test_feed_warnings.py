"""Built-in warnings and the poll schedule (pure core)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from gexbot.core.alerts.events import ALL_SYMBOLS, WarningKind, is_warning, warning_event
from gexbot.core.alerts.feed_warnings import FeedContext, feed_warnings, step_warning
from gexbot.core.alerts.states import AlertState, AlertStatus, NotifyReason, StatusBook
from gexbot.core.language.model import Severity
from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot, SymbolStatus
from tests.rulekit import T0, snapshot


class Warner:
    """Steps the feed warnings through time, keeping statuses like the pipeline."""

    def __init__(self, **feed: float) -> None:
        self.statuses = StatusBook()
        self.previous: BundleSnapshot | None = None
        self.feed = FeedContext(
            started_at=T0, interval=30, missing_after=feed.get("missing", 90), stale_after=90
        )
        self.now = T0

    def step(
        self, snaps: list[SymbolSnapshot] | None, dt: float = 30, failure: str | None = None
    ) -> list[str]:
        self.now += timedelta(seconds=dt)
        bundle = (
            None
            if snaps is None
            else BundleSnapshot(
                received_at=self.now, symbols=MappingProxyType({s.symbol: s for s in snaps})
            )
        )
        last_ok = self.now if bundle is not None else self.feed.last_success
        self.feed = FeedContext(
            started_at=T0,
            interval=30,
            missing_after=self.feed.missing_after,
            stale_after=90,
            last_success=last_ok,
            failure_kind=failure,
            failure_message="boom" if failure else None,
        )
        out = feed_warnings(
            self.statuses,
            previous=self.previous,
            bundle=bundle,
            now=self.now,
            feed=self.feed,
        )
        self.statuses.apply(out.statuses)
        if bundle is not None:
            self.previous = bundle
        return [f"{e.reason.value}: {e.message}" for e in out.events]


def ok(sym: str = "SOLUSDT", spot: float = 100, hvl: float = 99) -> SymbolSnapshot:
    return snapshot(spot, at=T0, symbol=sym, hvl=hvl)


def missing(sym: str = "SOLUSDT") -> SymbolSnapshot:
    return SymbolSnapshot(symbol=sym, status=SymbolStatus.MISSING)


def test_missing_warns_once_after_the_threshold_and_notices_recovery_once() -> None:
    w = Warner(missing=90)
    assert w.step([ok()]) == []
    assert w.step([missing()]) == []  # pending
    assert w.step([missing()]) == []  # 30 s
    assert w.step([missing()]) == []  # 60 s
    fired = w.step([missing()])  # 90 s
    assert fired == [
        "fired: SOLUSDT has had no data upstream for 1m30s (missing); its rules "
        "are paused until it returns."
    ]
    assert w.step([missing()]) == []
    back = w.step([ok()])
    assert back == ["resolved: SOLUSDT is served again after 2m30s; its rules resume."]
    assert w.step([ok()]) == []


def test_a_short_gap_says_nothing() -> None:
    w = Warner(missing=90)
    w.step([ok()])
    assert w.step([missing()]) == []
    assert w.step([ok()]) == []


def test_a_regime_change_across_the_gap_is_reported() -> None:
    w = Warner(missing=30)
    w.step([ok(spot=100, hvl=99)])  # above HVL
    w.step([missing()])
    w.step([missing()])
    back = w.step([ok(spot=98, hvl=99)])
    assert back[0].endswith("Regime changed during the gap: now below HVL (was above).")


def test_invalid_symbols_warn_once_until_fixed_even_across_restarts() -> None:
    w = Warner()
    invalid = SymbolSnapshot(symbol="DOGEUSDT", status=SymbolStatus.INVALID)
    first = w.step([ok(), invalid])
    assert len(first) == 1
    assert first[0].startswith("fired: DOGEUSDT is not a symbol")
    assert w.step([ok(), invalid]) == []
    restarted = Warner()  # a new process (cron, a new leader) reads the stored statuses
    restarted.statuses = w.statuses
    assert restarted.step([ok(), invalid]) == []
    assert restarted.step([ok()]) == []  # taken out of GEXBOT_SYMBOLS: forgotten quietly…
    assert restarted.step([ok(), invalid])[0].startswith("fired: DOGEUSDT")  # …and re-added


def test_stale_data_warns_and_recovers() -> None:
    w = Warner()
    stale = SymbolSnapshot(symbol="ETHUSDT", status=SymbolStatus.STALE, spot=1.0, computed_at=T0)
    w.step([ok("ETHUSDT")])
    assert w.step([stale])[0].startswith("fired: ETHUSDT data is stale: computed")
    assert w.step([stale]) == []
    assert w.step([ok("ETHUSDT")]) == ["resolved: ETHUSDT data is fresh again; its rules resume."]


def test_data_from_the_future_warns_as_suspect_not_as_stale() -> None:
    w = Warner()
    ahead = SymbolSnapshot(
        symbol="ETHUSDT",
        status=SymbolStatus.STALE,  # the wire judged it so
        spot=1.0,
        computed_at=datetime(9999, 1, 1, tzinfo=UTC),
    )
    w.step([ok("ETHUSDT")])
    (fired,) = w.step([ahead])
    assert fired.startswith("fired: ETHUSDT data is suspect: computed ")
    assert "ahead of this machine's clock" in fired


def test_feed_down_after_three_intervals_then_back() -> None:
    w = Warner()
    w.step([ok()])
    assert w.step(None, failure="transient") == []
    assert w.step(None, failure="transient") == []
    assert w.step(None, failure="transient") == []  # exactly 90 s: not yet beyond 3 intervals
    down = w.step(None, failure="transient")
    assert down[0].startswith("fired: The BackQuant feed is down: no successful poll for 2m")
    assert "Last error: boom." in down[0]
    assert w.step(None, failure="transient") == []
    assert w.step([ok()]) == ["resolved: The BackQuant feed is back."]


def test_auth_failure_warns_at_once_and_recovers() -> None:
    w = Warner()
    events = w.step(None, failure="auth")
    assert events[0].startswith("fired: BackQuant refused the API key: check GEXBOT_API_KEY")
    assert w.step(None, failure="auth") == []
    assert w.step([ok()]) == ["resolved: BackQuant accepts the API key again."]


def test_warning_sequences_make_each_notice_unique() -> None:
    w = Warner(missing=30)
    w.step([ok()])
    for _ in range(2):
        w.step([missing()])
        w.step([missing()])
        w.step([ok()])
    status = w.statuses["warning:missing"]["SOLUSDT"]
    assert status.seq == 4
    assert status.last_reason is NotifyReason.RESOLVED


# (hold, truths at 30 s steps, expected reasons per step): the warnings' own machine
WARNING_STEPS: dict[str, tuple[float, list[bool], list[str]]] = {
    "a problem at start fires at once (no baseline)": (
        0,
        [True, True, False, False],
        ["fired", "unchanged", "resolved", "unchanged"],
    ),
    "a held problem is pending first, fires once held": (
        60,
        [True, True, True, True, False],
        ["pending", "unchanged", "fired", "unchanged", "resolved"],
    ),
    "a problem gone before its hold clears quietly": (
        60,
        [True, False, True],
        ["pending", "cleared", "pending"],
    ),
    "nothing wrong, nothing to say": (0, [False, False], ["unchanged", "unchanged"]),
}


@pytest.mark.parametrize("name", list(WARNING_STEPS))
def test_the_warning_lifecycle(name: str) -> None:
    hold, truths, expected = WARNING_STEPS[name]
    status: AlertStatus | None = None
    now = T0
    got = []
    for truth in truths:
        step = step_warning(status, truth=truth, now=now, hold=hold, baseline=1.0)
        got.append(step.reason.value)
        status = step.status
        now += timedelta(seconds=30)
    assert got == expected


def test_a_warning_remembers_when_the_problem_began_and_numbers_its_notices() -> None:
    began = T0
    pending = step_warning(None, truth=True, now=began, hold=60, baseline=-1.0).status
    fired = step_warning(pending, truth=True, now=began + timedelta(seconds=90), hold=60).status
    assert (fired.state, fired.since, fired.baseline, fired.seq) == (
        AlertState.FIRING,
        began,
        -1.0,
        1,
    )
    resolved = step_warning(fired, truth=False, now=began + timedelta(seconds=120), hold=60)
    assert resolved.reason is NotifyReason.RESOLVED
    assert resolved.status.seq == 2


@pytest.mark.parametrize(
    ("kind", "subject", "symbol"),
    [
        (WarningKind.MISSING, "SOLUSDT", "SOLUSDT"),
        (WarningKind.FEED_DOWN, ALL_SYMBOLS, ""),
        (WarningKind.DELIVERY, "ops-slack", ""),
    ],
)
def test_one_builder_keys_every_warning(kind: WarningKind, subject: str, symbol: str) -> None:
    fired = warning_event(kind, subject, seq=3, reason=NotifyReason.FIRED, now=T0, text="x")
    resolved = warning_event(kind, subject, seq=4, reason=NotifyReason.RESOLVED, now=T0, text="y")
    assert fired.key == resolved.key == f"warning:{kind.value}|{subject}"
    assert (fired.symbol, fired.kind, fired.message) == (symbol, kind.value, "x")
    assert (fired.severity, resolved.severity) == (Severity.WARNING, Severity.INFO)
    assert is_warning(fired.rule_id)
