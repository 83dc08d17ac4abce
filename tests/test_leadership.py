"""Leadership: the lease row, the elector's role and fencing, takeover scheduling, commands
handled once, and what a replica refuses at start."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from gexbot.cli import main
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.language.model import Channel, ChannelKind
from gexbot.loops.cycle import Pipeline
from gexbot.loops.deliver import Dispatcher, DispatchPolicy, Route
from gexbot.loops.health import Metrics
from gexbot.loops.leadership import LeaseElector, NotLeader, Role, SoleInstance
from gexbot.store import leadership as lease
from gexbot.store.engine import head_revision, migrate
from gexbot.store.ops import claim_command
from gexbot.store.tables import alert_state, outbox, snapshot_last
from tests.conftest import fresh_database, threaded_sim
from tests.rulekit import T0, bundle, make_rule, snapshot
from tests.test_dispatch import Recorder, _alert


@pytest.fixture
def pg(tmp_path: Path, pg_unavailable: str | None) -> Iterator[Engine]:
    """A migrated PostgreSQL schema (leadership is PostgreSQL's: SQLite runs one process)."""
    with fresh_database("postgresql", tmp_path, pg_unavailable) as engine:
        migrate(engine)
        yield engine


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _changes(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("gexbot_leadership_changes_total")
    return value or 0.0


# -- the lease row ------------------------------------------------------------------------------


def test_one_holder_at_a_time_and_a_new_term_at_each_takeover(pg: Engine) -> None:
    with pg.begin() as conn:
        assert lease.acquire(conn, me="a", ttl=0.3) == 1
        assert lease.acquire(conn, me="b", ttl=0.3) is None  # held and live
        assert lease.renew(conn, me="a", term=1, ttl=0.3)
        assert not lease.renew(conn, me="b", term=1, ttl=0.3)
    time.sleep(0.4)
    with pg.begin() as conn:
        assert not lease.renew(conn, me="a", term=1, ttl=0.3)  # expired: renewing is too late
        assert lease.acquire(conn, me="b", ttl=5) == 2
        now = lease.current(conn)
    assert now is not None
    assert (now.holder, now.term, now.live) == ("b", 2, True)


def test_a_holder_whose_session_is_gone_is_replaced_before_its_lease_expires(pg: Engine) -> None:
    holder = pg.connect()
    holder.detach()  # closed for real on close, as a killed process's kernel does
    session = lease.session_id(holder)
    holder.commit()
    with holder.begin():
        assert lease.acquire(holder, me="a", ttl=60, session=session) == 1
    with pg.begin() as conn:
        assert lease.acquire(conn, me="b", ttl=60) is None  # a's session is alive: held
    holder.close()
    with pg.begin() as conn:
        assert lease.acquire(conn, me="b", ttl=60, session=lease.session_id(conn)) == 2
        now = lease.current(conn)
    assert now is not None
    assert (now.holder, now.term, now.live) == ("b", 2, True)


def test_a_standby_takes_over_at_once_when_the_leaders_process_is_gone(
    pg: Engine, request: pytest.FixtureRequest
) -> None:
    a = LeaseElector(pg, instance="a", ttl=60, monotonic=time.monotonic)
    b = LeaseElector(pg, instance="b", ttl=60, monotonic=time.monotonic)
    request.addfinalizer(b.close)
    a._tick()
    b._tick()
    assert a.is_leader()
    assert not b.is_leader()
    a.close()  # what SIGKILL does to a's lease connection
    b._tick()
    assert b.is_leader()  # on its first tick: it did not wait out the 60 s lease
    with pg.connect() as conn:
        now = lease.current(conn)
    assert now is not None
    assert now.holder == "b"
    assert now.holder_session is not None


def test_fence_refuses_a_deposed_term(pg: Engine) -> None:
    with pg.begin() as conn:
        lease.acquire(conn, me="a", ttl=0.2)
    time.sleep(0.3)
    with pg.begin() as conn:
        lease.acquire(conn, me="b", ttl=5)
    with pg.begin() as conn:
        conn.execute(alert_state.delete())  # any write of the old leader's cycle…
        with pytest.raises(NotLeader):
            lease.fence(conn, me="a", term=1)
    with pg.begin() as conn:
        lease.fence(conn, me="b", term=2)  # the new term passes


def test_release_lets_a_standby_in_at_once_and_keeps_the_last_poll_time(pg: Engine) -> None:
    with pg.begin() as conn:
        lease.acquire(conn, me="a", ttl=60)
        assert lease.renew(conn, me="a", term=1, ttl=60, polling=True)
        polled = lease.current(conn)
        assert lease.release(conn, me="a", term=1)
        assert lease.acquire(conn, me="b", ttl=60) == 2
        after = lease.current(conn)
    assert polled is not None
    assert after is not None
    assert polled.polled_at is not None
    assert after.polled_at == polled.polled_at


def test_two_standbys_racing_for_an_expired_lease_get_one_term(pg: Engine) -> None:
    with pg.begin() as conn:
        lease.acquire(conn, me="old", ttl=0.1)
    time.sleep(0.2)
    barrier = threading.Barrier(4)
    won: list[tuple[str, int | None]] = []

    def race(name: str) -> None:
        barrier.wait()
        with pg.begin() as conn:
            won.append((name, lease.acquire(conn, me=name, ttl=30)))

    threads = [threading.Thread(target=race, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [term for _, term in won if term is not None] == [2]


def test_a_takeover_waits_for_the_fenced_commit_in_flight(pg: Engine) -> None:
    """The fence locks the lease row: a standby cannot slip in between check and commit."""
    with pg.begin() as conn:
        lease.acquire(conn, me="a", ttl=0.5)
    conn = pg.connect()
    tx = conn.begin()
    lease.fence(conn, me="a", term=1)
    time.sleep(0.6)  # the lease expires while the fenced transaction is still open
    result: list[int | None] = []

    def standby() -> None:
        with pg.begin() as c:
            result.append(lease.acquire(c, me="b", ttl=5))

    thread = threading.Thread(target=standby)
    thread.start()
    thread.join(timeout=0.3)
    assert thread.is_alive()  # blocked on the row lock
    tx.commit()
    conn.close()
    thread.join(timeout=5)
    assert result == [2]


# -- the elector -----------------------------------------------------------------------------


def test_the_elector_leads_stands_by_and_notices_a_takeover_after_a_freeze(
    pg: Engine, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    caplog.set_level("INFO", logger="gexbot.loops.leadership")
    clock, metrics = Clock(), Metrics()
    a = LeaseElector(pg, instance="a", ttl=0.5, metrics=metrics, monotonic=clock)
    b = LeaseElector(pg, instance="b", ttl=0.5, monotonic=clock)
    request.addfinalizer(a.close)
    request.addfinalizer(b.close)
    a._tick()
    b._tick()
    assert a.is_leader()
    assert not b.is_leader()
    assert b.describe() == {
        "role": Role.STANDBY.value,
        "instance": "b",
        "leader": "a",
        "term": 1,
        "database_error": None,
    }
    takeover = a.take_over()
    assert takeover is not None
    assert takeover.term == 1
    assert a.take_over() is None
    # `a` freezes: its local deadline passes before the database lets `b` in.
    clock.t += 0.5
    assert not a.is_leader()
    assert a.describe()["leader"] is None  # it no longer knows who leads
    time.sleep(0.6)
    b._tick()
    assert b.is_leader()
    assert b.term == 2
    with pytest.raises(NotLeader), pg.begin() as conn:
        a.fence(conn)
    a._tick()  # wakes up: its renewal fails, it stands by
    assert not a.is_leader()
    assert a.term is None
    assert a.describe()["leader"] == "b"
    assert _changes(metrics) == 2  # became leader, stopped being leader
    assert "standing by; the leader is a (term 1)" in caplog.text  # b, at its first check
    assert "this replica (a) stopped leading (term 1)" in caplog.text


async def test_before_poll_renews_and_refuses_once_the_lease_is_gone(
    pg: Engine, request: pytest.FixtureRequest
) -> None:
    clock = Clock()
    a = LeaseElector(pg, instance="a", ttl=0.4, monotonic=clock)
    request.addfinalizer(a.close)
    assert not await a.before_poll()  # not leading yet
    a._tick()
    assert await a.before_poll()
    with pg.connect() as conn:
        now = lease.current(conn)
    assert now is not None
    assert now.polled_at is not None
    with pg.begin() as conn:
        conn.execute(text("UPDATE leadership SET expires_at = clock_timestamp()"))
    assert not await a.before_poll()
    assert a.term is None


async def test_release_on_stop_hands_over_without_waiting_for_expiry(
    pg: Engine, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    a = LeaseElector(pg, instance="a", ttl=60, monotonic=time.monotonic)
    b = LeaseElector(pg, instance="b", ttl=60, monotonic=time.monotonic)
    request.addfinalizer(a.close)
    request.addfinalizer(b.close)
    a._tick()
    assert a.is_leader()
    await a.release()
    assert not a.is_leader()
    assert "not renewed in time" not in caplog.text  # a clean hand-over, not a lapse
    b._tick()
    assert b.is_leader()
    assert b.term == 2


def test_a_deposed_leaders_cycle_commits_nothing(
    pg: Engine, request: pytest.FixtureRequest
) -> None:
    clock = Clock()
    a = LeaseElector(pg, instance="a", ttl=0.3, monotonic=clock)
    request.addfinalizer(a.close)
    a._tick()
    pipeline = Pipeline(pg, index_rules([make_rule("crosses", rule_id="x")]), fence=a.fence)
    pipeline.run(bundle(snapshot(99, hvl=100)), now=T0)
    clock.t += 1  # frozen past its lease…
    time.sleep(0.4)
    b = LeaseElector(pg, instance="b", ttl=30, monotonic=time.monotonic)
    request.addfinalizer(b.close)
    b._tick()  # …and replaced
    with pytest.raises(NotLeader):
        pipeline.run(bundle(snapshot(101, hvl=100)), now=T0 + timedelta(seconds=30))
    with pg.connect() as conn:
        assert list(conn.execute(select(outbox))) == []  # the crossing is the new leader's


def test_a_single_sqlite_process_always_leads() -> None:
    sole = SoleInstance("host-1")
    assert sole.is_leader()
    assert sole.take_over() is None
    assert sole.describe() == {"role": "leader", "instance": "host-1", "leader": "host-1"}


# -- commands handled once; deliveries not sent after their claim lapsed ----------------------


def test_a_chat_command_is_claimed_once(db: Engine) -> None:
    with db.begin() as conn:
        assert claim_command(conn, "slack:cmd:T1", by="a", now=T0)
        assert not claim_command(conn, "slack:cmd:T1", by="b", now=T0)
        assert claim_command(conn, "slack:cmd:T2", by="b", now=T0)


async def test_a_replica_frozen_past_its_claim_does_not_send_on_waking(db: Engine) -> None:
    _alert(db)
    clock = Clock()
    sender = Recorder()
    routes = {"tty": Route(Channel("tty", ChannelKind.TERMINAL, "terminal"), sender)}
    policy = DispatchPolicy(lease=10)
    dispatcher = Dispatcher(
        db, routes, clock=lambda: T0, policy=policy, monotonic=clock, rng=random.Random(0)
    )

    original = dispatcher._deliver_channel

    async def freeze_then_deliver(*args: object) -> None:
        clock.t += 60  # SIGSTOP between claim and send
        await original(*args)  # type: ignore[arg-type]

    dispatcher._deliver_channel = freeze_then_deliver  # type: ignore[method-assign,assignment]
    stats = await dispatcher.run_once()
    assert stats.sent == []
    assert sender.sent == []
    with db.connect() as conn:
        assert conn.execute(select(outbox.c.state)).scalar_one() == "sending"


# -- refused at start ------------------------------------------------------------------------------


def _run_with(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: str = "http://127.0.0.1:9"
) -> int:
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text(
        "channels: {tty: {terminal: true}}\nrules:\n"
        "  - {id: a, symbols: [BTCUSDT], when: {above: 1}, notify: tty}\n"
    )
    monkeypatch.setenv("GEXBOT_DATABASE_URL", url)
    monkeypatch.setenv("GEXBOT_API_KEY", "k")
    monkeypatch.setenv("GEXBOT_API_URL", api)
    return main(["once"])


def test_a_replica_refuses_a_database_without_the_current_schema(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pg_unavailable: str | None,
) -> None:
    if pg_unavailable:
        pytest.skip(pg_unavailable)
    from alembic import command

    from gexbot.store.engine import alembic_config

    with fresh_database("postgresql", tmp_path, pg_unavailable) as engine:
        url = engine.url.render_as_string(hide_password=False)
        assert _run_with(url, tmp_path, monkeypatch) == 2
        err = capsys.readouterr().err
        assert "no gexbot schema yet; run `gexbot db upgrade` once" in err
        command.upgrade(alembic_config(engine), "0001")  # a replica of an older release ran
        assert _run_with(url, tmp_path, monkeypatch) == 2
        err = capsys.readouterr().err
        assert f"schema is at revision 0001, this gexbot needs {head_revision()}" in err
        assert "run `gexbot db upgrade` once" in err
        with engine.connect() as conn:  # refused, not migrated behind the other replicas
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"


def test_once_polls_only_when_no_replica_leads(
    pg: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg.url.render_as_string(hide_password=False)
    with pg.begin() as conn:
        lease.acquire(conn, me="desk-a", ttl=60)
    with threaded_sim(api_key="k") as api:
        assert _run_with(url, tmp_path, monkeypatch, api) == 2
        assert "replica desk-a is running on this database" in capsys.readouterr().out
        with pg.begin() as conn:
            lease.release(conn, me="desk-a", term=1)
        assert _run_with(url, tmp_path, monkeypatch, api) == 0
    with pg.connect() as conn:
        assert conn.execute(select(snapshot_last.c.symbol)).first() is not None  # committed
        after = lease.current(conn)
    assert after is not None
    assert after.term == 2
    assert not after.live  # handed back at once


def test_a_frozen_replicas_open_transaction_is_ended_by_the_server(pg: Engine) -> None:
    """Its row locks would otherwise stall the replicas that took over."""
    with pg.connect() as conn:
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "5s"
