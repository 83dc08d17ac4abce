"""Store functions and the cycle transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event, func, insert, select

from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.events import AlertEvent
from gexbot.core.alerts.states import AlertState, AlertStatus, NotifyReason
from gexbot.core.market.snapshot import Level, SymbolStatus
from gexbot.loops.cycle import Pipeline
from gexbot.store.dialect import CHUNK, execute_rows
from gexbot.store.outbox import (
    OutboxState,
    claim,
    counts,
    enqueue,
    mark_dead,
    mark_retry,
    mark_sent,
    prune_sent,
)
from gexbot.store.snapshots import load_history, load_last_bundle, prune_history, save_snapshot
from gexbot.store.states import forget_rules, load_statuses, save_statuses
from gexbot.store.tables import alert_state, outbox
from tests.rulekit import T0, alert_event, bundle, make_rule, snapshot


def _event(key: str = "r|BTCUSDT", seq: int = 1) -> AlertEvent:
    return alert_event(
        key=key, seq=seq, rule_id="r", level=100.0, spot=101.0, distance_pct=-0.99, hvl=None
    )


def test_statuses_round_trip_and_upsert(db: Engine) -> None:
    first = AlertStatus(
        state=AlertState.FIRING,
        since=T0,
        baseline=1.0,
        last_notified=T0,
        seq=3,
        last_reason=NotifyReason.FIRED,
    )
    with db.begin() as conn:
        save_statuses(conn, {("r", "BTCUSDT"): first, ("r", "ETHUSDT"): AlertStatus()})
    later = AlertStatus(
        state=AlertState.INACTIVE,
        since=T0 + timedelta(minutes=1),
        baseline=-1.0,
        last_notified=T0,
        seq=4,
        last_reason=NotifyReason.RESOLVED,
    )
    with db.begin() as conn:
        save_statuses(conn, {("r", "BTCUSDT"): later})
    with db.connect() as conn:
        loaded = load_statuses(conn)
    assert loaded == {"r": {"BTCUSDT": later, "ETHUSDT": AlertStatus()}}
    assert loaded["r"]["BTCUSDT"].since is not None
    assert loaded["r"]["BTCUSDT"].since.tzinfo


def test_bulk_rows_are_stored_exactly_as_sqlalchemy_stores_them(db: Engine) -> None:
    """`execute_rows` hands values to the driver itself: the stored bytes must not differ."""
    row = {
        "rule_id": "r",
        "symbol": "BTCUSDT",
        "state": "firing",
        "since": T0,  # whole seconds: where a naive driver format differs
        "baseline": 1.5,
        "last_notified": None,
        "seq": 2,
        "last_reason": "fired",
    }
    with db.begin() as conn:
        conn.execute(insert(alert_state), [row])
        execute_rows(conn, insert(alert_state), alert_state, [{**row, "symbol": "ETHUSDT"}])
    with db.connect() as conn:  # raw text: what a SQLite string comparison would see
        stored = conn.exec_driver_sql(
            "SELECT symbol, CAST(since AS TEXT), baseline, last_notified FROM alert_state"
        ).all()
    by_symbol = {r[0]: r[1:] for r in stored}
    assert by_symbol["ETHUSDT"] == by_symbol["BTCUSDT"]
    assert by_symbol["ETHUSDT"][1:] == (1.5, None)


def test_a_write_larger_than_one_chunk_stores_and_counts_every_row(db: Engine) -> None:
    n = CHUNK * 2 + 7  # a leader's first cycle over many personal alerts
    statuses = {
        (f"personal:{i}", "BTCUSDT"): AlertStatus(since=T0 + timedelta(seconds=i), seq=i)
        for i in range(n)
    }
    with db.begin() as conn:
        assert save_statuses(conn, statuses) == n
        assert enqueue(conn, [(_event(f"k{i}|BTCUSDT"), ("tty",)) for i in range(n)], now=T0) == n
    with db.connect() as conn:
        loaded = load_statuses(conn)
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == n
    assert {(r, s): st for r, by in loaded.items() for s, st in by.items()} == statuses


def test_forget_rules_drops_only_their_statuses(db: Engine) -> None:
    with db.begin() as conn:
        save_statuses(conn, {("a", "X"): AlertStatus(), ("b", "X"): AlertStatus()})
        assert forget_rules(conn, ["a"]) == 1
        assert set(load_statuses(conn)) == {"b"}


def test_snapshots_keep_the_last_per_symbol_and_a_deduplicated_history(db: Engine) -> None:
    b1 = bundle(snapshot(101, hvl=100, call_resistance=None), at=T0)
    later = T0 + timedelta(seconds=30)
    b2 = bundle(snapshot(102, at=later, hvl=100.5), at=later)
    with db.begin() as conn:
        save_snapshot(conn, b1)
        save_snapshot(conn, b1)  # the same computed_at polled twice
        save_snapshot(conn, b2)
    with db.connect() as conn:
        last = load_last_bundle(conn)
        history = load_history(conn, "BTCUSDT")
    assert last is not None
    snap = last.symbols["BTCUSDT"]
    assert snap.spot == 102
    assert snap.level(Level.HVL) == 100.5
    assert snap.computed_at == later
    assert snap.level(Level.CALL_RESISTANCE) is None
    assert [h.spot for h in history] == [101, 102]
    with db.begin() as conn:
        assert prune_history(conn, before=later) == 1


def test_enqueue_skips_rows_that_already_exist(db: Engine) -> None:
    with db.begin() as conn:
        first = enqueue(conn, [(_event(), ["desk", "me"])], now=T0)
        again = enqueue(conn, [(_event(), ["desk", "me", "tty"])], now=T0)
        next_seq = enqueue(conn, [(_event(seq=2), ["desk"])], now=T0)
    assert first == 2
    assert again == 1  # only tty is new
    assert next_seq == 1
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 4


def test_claim_leases_rows_and_expired_leases_come_back(db: Engine) -> None:
    with db.begin() as conn:
        enqueue(conn, [(_event(), ["desk"])], now=T0)
    with db.begin() as conn:
        rows = claim(conn, now=T0, lease=30)
        assert [r.channel for r in rows] == ["desk"]
        assert rows[0].attempts == 1
        assert rows[0].event == _event()
        assert claim(conn, now=T0 + timedelta(seconds=10), lease=30) == []  # leased
    with db.begin() as conn:
        again = claim(conn, now=T0 + timedelta(seconds=31), lease=30)  # the sender died
    assert [r.id for r in again] == [rows[0].id]
    assert again[0].attempts == 2


def test_marks_retry_dead_and_sent(db: Engine) -> None:
    with db.begin() as conn:
        enqueue(conn, [(_event(), ["a", "b", "c"])], now=T0)
        a, b, c = claim(conn, now=T0, lease=30)
        assert mark_sent(conn, a, now=T0, provider_id="1700000000.000100")
        assert mark_retry(conn, b, due_at=T0 + timedelta(minutes=5), error="429")
        assert mark_dead(conn, c, error="channel_not_found")
        assert not mark_sent(conn, a, now=T0, provider_id="x")  # no longer ours
        assert counts(conn) == {
            OutboxState.PENDING: 1,
            OutboxState.SENDING: 0,
            OutboxState.SENT: 1,
            OutboxState.DEAD: 1,
        }
        assert claim(conn, now=T0 + timedelta(minutes=4), lease=30) == []
        assert [r.id for r in claim(conn, now=T0 + timedelta(minutes=5), lease=30)] == [b.id]
        assert prune_sent(conn, before=T0 + timedelta(seconds=1)) == 1


def test_concurrent_claims_never_hand_out_a_row_twice(db: Engine) -> None:
    with db.begin() as conn:
        enqueue(conn, [(_event(seq=i), [f"ch{j}" for j in range(5)]) for i in range(1, 21)], now=T0)
    got: list[list[int]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        mine: list[int] = []
        while True:
            with db.begin() as conn:
                rows = claim(conn, now=T0, lease=60, limit=7)
            if not rows:
                break
            mine.extend(r.id for r in rows)
        got.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for ids in got for i in ids]
    assert len(claimed) == 100
    assert len(set(claimed)) == 100


# -- the cycle transaction ----------------------------------------------------------------------


def _pipeline(db: Engine) -> Pipeline:
    return Pipeline(
        db,
        index_rules(
            [make_rule("crosses", notify_to=None)]
            if False
            else [make_rule("crosses", rule_id="hvl-cross")]
        ),
    )


def test_a_cycle_commits_statuses_snapshot_and_outbox_together(db: Engine) -> None:
    p = _pipeline(db)
    p.run(bundle(snapshot(99, hvl=100)), now=T0)
    report = p.run(bundle(snapshot(101, hvl=100)), now=T0 + timedelta(seconds=30))
    assert report.enqueued == 1
    with db.connect() as conn:
        status = load_statuses(conn)["hvl-cross"]["BTCUSDT"]
        last = load_last_bundle(conn)
        row = conn.execute(select(outbox)).one()
    assert status.seq == 1
    assert status.baseline == 1.0
    assert last is not None
    assert last.symbols["BTCUSDT"].spot == 101
    assert row.alert_key == "hvl-cross|BTCUSDT"
    assert row.seq == 1
    assert row.channel == "tty"
    assert row.payload["direction"] == "up"


def test_a_crash_before_commit_loses_nothing_and_the_rerun_enqueues_once(db: Engine) -> None:
    p = _pipeline(db)
    p.run(bundle(snapshot(99, hvl=100)), now=T0)
    crossing = bundle(snapshot(101, hvl=100))

    def boom(_conn: object) -> None:
        raise RuntimeError("power cut")

    event.listen(db, "commit", boom)
    with pytest.raises(RuntimeError, match="power cut"):
        p.run(crossing, now=T0 + timedelta(seconds=30))
    event.remove(db, "commit", boom)
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 0
        assert load_statuses(conn)["hvl-cross"]["BTCUSDT"].seq == 0
    # The restarted cycle sees the same data and alerts exactly once.
    again = Pipeline(db, p.rules).run(crossing, now=T0 + timedelta(seconds=31))
    assert again.enqueued == 1
    assert Pipeline(db, p.rules).run(crossing, now=T0 + timedelta(seconds=32)).enqueued == 0


def test_rerunning_a_committed_cycle_enqueues_nothing_new(db: Engine) -> None:
    p = _pipeline(db)
    p.run(bundle(snapshot(99, hvl=100)), now=T0)
    crossing = bundle(snapshot(101, hvl=100))
    assert p.run(crossing, now=T0 + timedelta(seconds=30)).enqueued == 1
    fresh = Pipeline(db, p.rules)  # a restarted process
    assert fresh.run(crossing, now=T0 + timedelta(seconds=60)).enqueued == 0
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 1


def test_only_changed_statuses_are_written(db: Engine) -> None:
    rules = [make_rule("above", 50.0, rule_id=f"r{i}") for i in range(200)]
    p = Pipeline(db, index_rules(rules))
    p.run(bundle(snapshot(40)), now=T0)  # 200 baselines
    statements: list[str] = []

    def count(_c: object, _cur: object, stmt: str, *_a: object) -> None:
        statements.append(stmt)

    event.listen(db, "before_cursor_execute", count)
    try:
        p.run(bundle(snapshot(41)), now=T0 + timedelta(seconds=30))  # nothing changes
    finally:
        event.remove(db, "before_cursor_execute", count)
    assert not any("alert_state" in s for s in statements)
    assert not any("outbox" in s for s in statements)


def test_missing_and_stale_symbols_are_stored_without_touching_rules(db: Engine) -> None:
    from gexbot.core.market.snapshot import SymbolSnapshot

    p = _pipeline(db)
    p.run(bundle(snapshot(99, hvl=100)), now=T0)
    missing = bundle(SymbolSnapshot(symbol="BTCUSDT", status=SymbolStatus.MISSING))
    p.run(missing, now=T0 + timedelta(seconds=30))
    with db.connect() as conn:
        last = load_last_bundle(conn)
        statuses = load_statuses(conn)
    assert last is not None
    assert last.symbols["BTCUSDT"].status is SymbolStatus.MISSING
    assert statuses["hvl-cross"]["BTCUSDT"].baseline == -1.0
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(alert_state)).scalar() == 1


def test_a_reload_waits_for_the_cycle_in_progress_and_then_forgets_the_changed_rule(
    db: Engine,
) -> None:
    """The cycle and the reload run in two worker threads; the cycle is held inside its
    transaction (in the fence, the last step before commit) while the reload is asked for."""
    in_commit, release = threading.Event(), threading.Event()

    def slow_fence(conn: object) -> None:
        in_commit.set()
        release.wait(10)

    rule = make_rule("above", 1.0)
    pipeline = Pipeline(db, index_rules([rule]), fence=slow_fence)
    cycle = threading.Thread(target=lambda: pipeline.run(bundle(snapshot(2)), now=T0))
    cycle.start()
    assert in_commit.wait(10)
    reloaded = threading.Event()

    def reload() -> None:
        pipeline.replace_rules(index_rules([make_rule("above", 3.0)]), frozenset({"r"}))
        reloaded.set()

    reloader = threading.Thread(target=reload)
    reloader.start()
    # An observation window: a reload that did not wait would finish within it.
    assert not reloaded.wait(0.5), "the reload ran while a cycle was committing"
    release.set()
    cycle.join(10)
    reloader.join(10)
    assert reloaded.is_set()
    with db.connect() as conn:
        assert load_statuses(conn) == {}  # the cycle's state of the old rule did not survive


def test_a_large_load_is_frozen_out_of_the_collector_until_the_cache_is_dropped(
    db: Engine,
) -> None:
    """A full collector pass over 100,000 alerts' cache stalled a cycle for 0.4 s."""
    import gc

    from gexbot.loops.cycle import LARGE_LOAD

    gc.unfreeze()
    small = _pipeline(db)
    small.run(bundle(snapshot(99, hvl=100)), now=T0)
    assert gc.get_freeze_count() == 0  # a few statuses: nothing to gain
    with db.begin() as conn:
        save_statuses(conn, {(f"r{i}", "BTCUSDT"): AlertStatus() for i in range(LARGE_LOAD)})
    large = _pipeline(db)
    try:
        large.run(bundle(snapshot(99, hvl=100)), now=T0 + timedelta(seconds=30))
        assert gc.get_freeze_count() > 0
    finally:
        large.invalidate()
    assert gc.get_freeze_count() == 0
