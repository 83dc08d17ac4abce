"""The dispatcher against the store: outcomes, and crashes at every step of a delivery."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.language.model import Channel, ChannelKind
from gexbot.core.present.render import Rendered
from gexbot.loops.cycle import Pipeline
from gexbot.loops.deliver import DeliveryError, Dispatcher, DispatchPolicy, DispatchStats, Route
from gexbot.store.outbox import OutboxState, claim, counts
from gexbot.store.tables import outbox
from tests.rulekit import T0, bundle, make_rule, snapshot

POLICY = DispatchPolicy(lease=30, max_attempts=3, base_delay=2, max_delay=60)


class Recorder:
    """A notifier that records what it sent and can be told to fail."""

    platform = "terminal"
    groups = True

    def __init__(self, errors: list[DeliveryError | Exception] | None = None) -> None:
        self.sent: list[tuple[str, int]] = []
        self.messages: list[list[str]] = []
        self.errors = list(errors or [])
        self.count = 0

    async def close(self) -> None:
        pass

    async def send_image(self, target: str, png: bytes, title: str) -> None:
        pass

    async def send(
        self,
        target: str,
        items: Sequence[Rendered],
        *,
        reply_to: str | None = None,
        buttons: str | None = None,
    ) -> str | None:
        if self.errors:
            raise self.errors.pop(0)
        self.messages.append([r.headline for r in items])
        self.sent.append(("x|BTCUSDT", len(self.messages)))
        self.count += 1
        return f"msg-{self.count}"


async def dispatch_due(
    db: Engine,
    sender: Recorder,
    *,
    now: datetime,
    policy: DispatchPolicy,
    rng: random.Random | None = None,
) -> DispatchStats:
    rng = rng or random.Random(0)
    routes = {"tty": Route(Channel("tty", ChannelKind.TERMINAL, "terminal"), sender)}
    dispatcher = Dispatcher(
        db, routes, clock=lambda: now, policy=policy, rng=rng, monotonic=time.monotonic
    )
    return await dispatcher.run_once()


def _alert(db: Engine) -> None:
    """Commit one crossing alert for channel tty."""
    p = Pipeline(db, index_rules([make_rule("crosses", rule_id="x")]))
    p.run(bundle(snapshot(99, hvl=100)), now=T0)
    assert p.run(bundle(snapshot(101, hvl=100)), now=T0).enqueued == 1


def _state(db: Engine) -> tuple[str, int, str | None]:
    with db.connect() as conn:
        row = conn.execute(select(outbox)).one()
    return row.state, row.attempts, row.last_error


async def test_sent_rows_are_marked_with_the_provider_id(db: Engine) -> None:
    _alert(db)
    sender = Recorder()
    stats = await dispatch_due(db, sender, now=T0, policy=POLICY)
    assert sender.sent == [("x|BTCUSDT", 1)]
    assert len(stats.sent) == 1
    with db.connect() as conn:
        row = conn.execute(select(outbox)).one()
    assert row.state == "sent"
    assert row.provider_message_id == f"msg-{row.id}"
    assert (await dispatch_due(db, sender, now=T0, policy=POLICY)).sent == []


async def test_transient_failures_retry_after_the_given_delay(db: Engine) -> None:
    _alert(db)
    sender = Recorder([DeliveryError("rate limited", retry_after=20)])
    stats = await dispatch_due(db, sender, now=T0, policy=POLICY)
    assert len(stats.retried) == 1
    assert _state(db)[:2] == ("pending", 1)
    assert (
        await dispatch_due(db, sender, now=T0 + timedelta(seconds=19), policy=POLICY)
    ).sent == []
    assert (
        len((await dispatch_due(db, sender, now=T0 + timedelta(seconds=20), policy=POLICY)).sent)
        == 1
    )


async def test_permanent_failures_are_dead_at_once(db: Engine) -> None:
    _alert(db)
    sender = Recorder([DeliveryError("channel_not_found", permanent=True)])
    stats = await dispatch_due(db, sender, now=T0, policy=POLICY)
    assert len(stats.dead) == 1
    assert _state(db) == ("dead", 1, "channel_not_found")


async def test_attempts_are_bounded(db: Engine) -> None:
    _alert(db)
    sender = Recorder([DeliveryError("503")] * 5)
    now = T0
    for _ in range(3):
        await dispatch_due(db, sender, now=now, policy=POLICY, rng=random.Random(1))
        now += timedelta(minutes=5)
    assert _state(db)[:2] == ("dead", 3)
    assert sender.sent == []


async def test_an_unexpected_sender_bug_is_retried_without_its_message(db: Engine) -> None:
    _alert(db)
    sender = Recorder([ValueError("token xoxb-secret in a foreign message")])
    stats = await dispatch_due(db, sender, now=T0, policy=POLICY)
    assert len(stats.retried) == 1
    state, _, error = _state(db)
    assert state == "pending"
    assert error == "unexpected ValueError"


async def test_crash_after_commit_before_send_delivers_on_restart(db: Engine) -> None:
    _alert(db)  # committed; the process dies before the dispatcher runs
    sender = Recorder()
    stats = await dispatch_due(db, sender, now=T0 + timedelta(seconds=5), policy=POLICY)
    assert len(stats.sent) == 1
    assert sender.sent == [("x|BTCUSDT", 1)]


async def test_crash_after_send_before_mark_resends_once_the_lease_expires(db: Engine) -> None:
    _alert(db)
    with db.begin() as conn:
        rows = claim(conn, now=T0, lease=POLICY.lease)  # claimed, sent… and the process died
    assert len(rows) == 1
    sender = Recorder()
    assert (
        await dispatch_due(db, sender, now=T0 + timedelta(seconds=10), policy=POLICY)
    ).sent == []
    stats = await dispatch_due(db, sender, now=T0 + timedelta(seconds=31), policy=POLICY)
    # At-least-once: the message goes out again (the documented duplicate window), never lost.
    assert len(stats.sent) == 1
    assert _state(db)[:2] == ("sent", 2)
    with db.connect() as conn:
        assert counts(conn)[OutboxState.SENT] == 1


@pytest.mark.parametrize("crash_at", ["before-commit", "after-commit", "after-send"])
async def test_no_step_of_a_crash_loses_or_doubles_an_enqueued_alert(
    db: Engine, crash_at: str
) -> None:
    rules = index_rules([make_rule("crosses", rule_id="x")])
    Pipeline(db, rules).run(bundle(snapshot(99, hvl=100)), now=T0)
    crossing = bundle(snapshot(101, hvl=100))
    if crash_at == "before-commit":
        from sqlalchemy import event

        def boom(_c: object) -> None:
            raise RuntimeError("killed")

        event.listen(db, "commit", boom)
        with pytest.raises(RuntimeError):
            Pipeline(db, rules).run(crossing, now=T0)
        event.remove(db, "commit", boom)
    else:
        Pipeline(db, rules).run(crossing, now=T0)
        if crash_at == "after-send":
            with db.begin() as conn:
                claim(conn, now=T0, lease=POLICY.lease)
    # Restart: run the same cycle again, then deliver until quiet.
    Pipeline(db, rules).run(crossing, now=T0 + timedelta(seconds=1))
    sender = Recorder()
    await dispatch_due(db, sender, now=T0 + timedelta(minutes=2), policy=POLICY)
    assert sender.sent == [("x|BTCUSDT", 1)]
    with db.connect() as conn:
        assert counts(conn) == {
            OutboxState.PENDING: 0,
            OutboxState.SENDING: 0,
            OutboxState.SENT: 1,
            OutboxState.DEAD: 0,
        }


async def test_an_unreadable_payload_is_dead_at_the_claim_and_the_rest_still_go(
    db: Engine,
) -> None:
    _alert(db)
    with db.begin() as conn:
        conn.execute(
            outbox.insert().values(
                alert_key="y|BTCUSDT",
                seq=1,
                channel="tty",
                payload={"rule_id": "y"},  # no time, no reason: another version wrote it
                state="pending",
                attempts=0,
                due_at=T0,
                created_at=T0,
            )
        )
    sender = Recorder()
    stats = await dispatch_due(db, sender, now=T0, policy=POLICY)
    assert len(stats.sent) == 1
    assert sender.sent == [("x|BTCUSDT", 1)]
    with db.connect() as conn:
        bad = conn.execute(select(outbox).where(outbox.c.alert_key == "y|BTCUSDT")).one()
    assert bad.state == "dead"
    assert "unreadable payload" in bad.last_error


class _StolenWhileSending(Recorder):
    """Sends, but meanwhile another replica re-claimed the row (our lease lapsed)."""

    def __init__(self, db: Engine) -> None:
        super().__init__()
        self._db = db

    async def send(
        self,
        target: str,
        items: Sequence[Rendered],
        *,
        reply_to: str | None = None,
        buttons: str | None = None,
    ) -> str | None:
        with self._db.begin() as conn:
            assert claim(conn, now=T0 + timedelta(seconds=31), lease=30) != []
        return await super().send(target, items)


async def test_a_mark_that_finds_the_row_no_longer_ours_is_not_counted_and_says_so(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _alert(db)
    stats = await dispatch_due(db, _StolenWhileSending(db), now=T0, policy=POLICY)
    assert stats.sent == []  # the other replica's outcome stands
    assert "sent after their claim lapsed; they may arrive twice" in caplog.text
    assert _state(db)[0] == "sending"  # the other replica's claim


async def test_a_retry_mark_on_a_row_another_replica_holds_changes_nothing(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _alert(db)

    class StolenThenFails(_StolenWhileSending):
        async def send(
            self,
            target: str,
            items: Sequence[Rendered],
            *,
            reply_to: str | None = None,
            buttons: str | None = None,
        ) -> str | None:
            await super().send(target, items)
            raise DeliveryError("502 from the platform")

    caplog.set_level("INFO")
    stats = await dispatch_due(db, StolenThenFails(db), now=T0, policy=POLICY)
    assert stats.retried == []
    assert "claimed by another replica meanwhile" in caplog.text
    state, attempts, error = _state(db)
    assert (state, attempts, error) == ("sending", 2, None)
