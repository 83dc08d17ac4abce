"""Three real `gexbot run` replicas on one PostgreSQL: the leader is killed, frozen or cut off
from the database again and again while BTC keeps crossing its HVL.

From the fakes' and the simulator's records: every alert reaches both destinations, the only
duplicates are sends whose mark was lost, no two replicas poll the same refresh window, a
standby takes over within two poll intervals, and every Slack command is answered once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from gexbot.store.engine import migrate
from gexbot.store.leadership import Lease, current
from gexbot.store.tables import outbox
from tests.conftest import fresh_database
from tests.fakes import FakeSlack, FakeTelegram, TcpProxy, TelegramMessage
from tests.test_crash import RULES, crossing_scenario
from tests.waiting import eventually, until

PERIOD = 2.0  # the simulator's refresh and GEXBOT_POLL_INTERVAL
LEASE = 1.0  # GEXBOT_LEADER_LEASE
FAULTS = ["kill", "freeze", "cut"] * 4  # 12 leader failures
TRADER = 4242


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Replica:
    name: str
    proc: asyncio.subprocess.Process
    proxy: TcpProxy
    http: int
    log: IO[bytes]


@dataclass
class Fault:
    kind: str
    victim: str
    at: float  # wall clock, as in the simulator's log
    takeover: float = 0.0  # seconds until another replica held the lease
    successor: str = ""
    first_poll: float | None = None  # seconds until the successor's first poll


@dataclass
class Cluster:
    tmp: Path
    env: dict[str, str]
    schema_url: str
    replicas: dict[str, Replica] = field(default_factory=dict)
    started: int = 0

    async def spawn(self) -> Replica:
        name = f"r{self.started}"
        self.started += 1
        url = make_url(self.schema_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        port = await proxy.start()
        env = dict(self.env)
        http = _free_port()
        env.update(
            GEXBOT_INSTANCE=name,
            GEXBOT_HTTP_PORT=str(http),
            GEXBOT_DATABASE_URL=url.set(host="127.0.0.1", port=port).render_as_string(
                hide_password=False
            ),
        )
        log = (self.tmp / f"{name}.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gexbot", "run", env=env, cwd=self.tmp, stdout=log, stderr=log
        )
        replica = Replica(name, proc, proxy, http, log)
        self.replicas[name] = replica
        return replica

    async def stop_all(self) -> None:
        for r in self.replicas.values():
            if r.proc.returncode is None:
                r.proxy.restore()
                r.proc.send_signal(signal.SIGCONT)
                r.proc.send_signal(signal.SIGTERM)
        for r in self.replicas.values():
            try:
                await asyncio.wait_for(r.proc.wait(), timeout=15)
            except TimeoutError:
                r.proc.kill()
                await r.proc.wait()
            await r.proxy.stop()
            r.log.close()


def _status_replies(telegram: FakeTelegram) -> list[TelegramMessage]:
    return [m for m in telegram.messages if m.chat_id == str(TRADER) and "Replica " in m.text]


def _lease(engine: Engine) -> Lease | None:
    with engine.connect() as conn:
        return current(conn)


@pytest.fixture
def ha_db(tmp_path: Path, pg_unavailable: str | None) -> Iterator[tuple[Engine, str]]:
    with fresh_database("postgresql", tmp_path, pg_unavailable) as engine:
        migrate(engine)  # `gexbot db upgrade`: replicas on PostgreSQL never migrate by themselves
        yield engine, engine.url.render_as_string(hide_password=False)


async def _roles(cluster: Cluster) -> dict[str, tuple[str, str | None]]:
    """Each live replica's /status, once they agree on one leader (a replica back from a
    freeze learns who leads at its next lease check)."""
    async with httpx.AsyncClient() as http:

        async def agreed() -> dict[str, tuple[str, str | None]] | None:
            roles = {}
            for r in cluster.replicas.values():
                if r.proc.returncode is None:
                    status = (await http.get(f"http://127.0.0.1:{r.http}/status")).json()
                    health = (await http.get(f"http://127.0.0.1:{r.http}/healthz")).json()
                    assert health["role"] == status["role"]
                    roles[r.name] = (status["role"], status["leader"])
            leaders = {n for n, (role, _) in roles.items() if role == "leader"}
            one = len(leaders) == 1 and {leader for _, leader in roles.values()} == leaders
            return roles if one else None

        return await eventually(agreed, timeout=20, what="the replicas to agree on one leader")


async def _inject(
    cluster: Cluster, engine: Engine, slack: FakeSlack, telegram: FakeTelegram, rng: random.Random
) -> tuple[list[Fault], list[str], list[int]]:
    """Fail the leader once per FAULTS entry; a command on each platform after each takeover."""
    faults: list[Fault] = []
    envelopes: list[str] = []
    commands: list[int] = []

    def live() -> Lease | None:
        lease = _lease(engine)
        return lease if lease is not None and lease.live else None

    await until(live, timeout=20, what="a first leader")
    for n, kind in enumerate(FAULTS):
        await asyncio.sleep(rng.uniform(2.0, 3.5))  # a cycle or two under this leader
        lease = live()
        assert lease is not None, "no leader between faults"
        victim = cluster.replicas[lease.holder]
        fault = Fault(kind, victim.name, time.time())
        if kind == "kill":
            victim.proc.send_signal(signal.SIGKILL)
        elif kind == "freeze":
            victim.proc.send_signal(signal.SIGSTOP)
        else:
            victim.proxy.cut()

        def taken(old: Lease = lease) -> bool:
            new = live()
            return new is not None and new.term > old.term and new.holder != old.holder

        await until(taken, timeout=10, what=f"a takeover after fault {n} ({kind})")
        fault.takeover = time.time() - fault.at
        successor = live()
        fault.successor = successor.holder if successor else "?"
        faults.append(fault)
        # Commands while the old leader is still out: each must be answered once.
        commands.append(telegram.push_command("/status", user=TRADER))
        envelopes.append(f"env-ha-{n}")
        payload = {"command": "/gex", "text": "status", "user_id": "U1", "channel_id": "C1"}
        await slack.broadcast("slash_commands", {**payload, "trigger_id": f"t{n}"}, envelopes[-1])
        await asyncio.sleep(1.5)  # the frozen or cut-off leader stays out a while
        if kind == "kill":
            await victim.proc.wait()
            await cluster.spawn()
        elif kind == "freeze":
            victim.proc.send_signal(signal.SIGCONT)  # it wakes up believing it leads
        else:
            victim.proxy.restore()
    return faults, envelopes, commands


def _instance(entry: dict[str, Any]) -> str:
    agent: str = entry["agent"]
    return agent.rsplit("instance/", 1)[-1]


def _shared_windows(sim_log: Path, faults: list[Fault]) -> tuple[list[int], int]:
    """Refresh ticks polled by more than one replica; fills each fault's first-poll time."""
    entries = [json.loads(line) for line in sim_log.read_text().splitlines()]
    multi = [e for e in entries if e["path"] == "/v2/multi/gex/levels"]
    polls: dict[int, set[str]] = defaultdict(set)
    for e in multi:
        polls[e["tick"]].add(_instance(e))
    for f in faults:
        later = [e["t"] for e in multi if e["t"] > f.at and _instance(e) == f.successor]
        f.first_poll = (min(later) - f.at) if later else None
    return sorted(t for t, names in polls.items() if len(names) > 1), len(multi)


def _deliveries(
    rows: list[Any], slack: FakeSlack, telegram: FakeTelegram
) -> tuple[dict[tuple[str, int], set[str]], int]:
    """The destinations of each alert, and how many posts the store never marked (sent, then
    the sender died before its mark: the documented duplicate window)."""
    alerts: dict[tuple[str, int], set[str]] = defaultdict(set)
    for row in rows:
        alerts[(row.alert_key, row.seq)].add(row.channel)
    replies = _status_replies(telegram)
    alert_messages = [
        str(m.message_id)
        for m in telegram.messages
        if m.chat_id == str(TRADER) and m not in replies
    ]
    received = {"desk": [p.ts for p in slack.posts], "me": alert_messages}
    duplicates = 0
    for channel in ("desk", "me"):
        sent = [row for row in rows if row.channel == channel and row.state == "sent"]
        marked = {row.provider_message_id for row in sent}
        assert marked <= set(received[channel])  # what the store calls sent, the platform has
        duplicates += len([m for m in received[channel] if m not in marked])
    return alerts, duplicates


async def _start_sim(
    tmp_path: Path, sim_log: Path, *, period: float = PERIOD, steps: int = 200
) -> tuple[asyncio.subprocess.Process, str]:
    (tmp_path / "scenario.yaml").write_text(crossing_scenario(steps, period))
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "gexbot", "sim-server", "--port", "0", "--scenario", "scenario.yaml"),
        *("--request-log", str(sim_log)),
        env={k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    assert sim.stdout is not None
    return sim, (await sim.stdout.readline()).decode().split(" on ")[1].split("/v2")[0]


async def _shutdown(
    cluster: Cluster, sim: asyncio.subprocess.Process, slack: FakeSlack, telegram: FakeTelegram
) -> None:
    await cluster.stop_all()
    sim.send_signal(signal.SIGTERM)
    await sim.wait()
    await slack.stop()
    await telegram.stop()


def _outbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(outbox)))


def _drained(engine: Engine) -> int | None:
    """The last outbox id when nothing is left to deliver (every row sent or dead), else None."""
    with engine.connect() as conn:
        rows = list(conn.execute(select(outbox.c.id, outbox.c.state)))
    if {r.state for r in rows} <= {"sent", "dead"}:
        return max((r.id for r in rows), default=0)
    return None


async def _wait_drained(engine: Engine) -> int:
    """The last outbox id once the outbox is seen drained. Replicas still running go on
    alerting, so later rows may still wait when they are stopped."""
    last: list[int] = []

    def drained() -> bool:
        seen = _drained(engine)
        if seen is not None:
            last.append(seen)
        return seen is not None

    await until(drained, timeout=30, what="the outbox to drain")
    return last[-1]


def _states_until(rows: list[Any], last_id: int) -> set[str]:
    return {row.state for row in rows if row.id <= last_id}


def _replica_env(
    tmp_path: Path,
    sim_url: str,
    slack: FakeSlack,
    telegram: FakeTelegram,
    *,
    interval: float,
    **extra: str,
) -> dict[str, str]:
    """The settings every replica shares: the simulator, BTC, the rules and both fakes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    env.update(
        GEXBOT_API_URL=sim_url,
        GEXBOT_API_KEY="demo",
        GEXBOT_SYMBOLS="BTCUSDT",
        GEXBOT_POLL_INTERVAL=str(interval),
        GEXBOT_RULES=str(tmp_path / "rules"),
        GEXBOT_SLACK_BOT_TOKEN=slack.token,
        GEXBOT_SLACK_API_URL=slack.api_url,
        GEXBOT_TELEGRAM_BOT_TOKEN=telegram.token,
        GEXBOT_TELEGRAM_API_URL=telegram.api_url,
        **extra,
    )
    return env


@pytest.mark.slow
async def test_three_replicas_survive_a_dozen_leader_failures(
    tmp_path: Path, ha_db: tuple[Engine, str]
) -> None:
    engine, schema_url = ha_db
    sim_log = tmp_path / "requests.jsonl"
    sim, sim_url = await _start_sim(tmp_path, sim_log)
    slack, telegram = FakeSlack(), FakeTelegram()
    await slack.start()
    await telegram.start()
    env = _replica_env(
        tmp_path,
        sim_url,
        slack,
        telegram,
        interval=PERIOD,
        GEXBOT_LEADER_LEASE=str(LEASE),
        GEXBOT_DELIVERY_LEASE="3",
        GEXBOT_SLACK_APP_TOKEN=slack.app_token,
        GEXBOT_TELEGRAM_ALLOWED_USERS=str(TRADER),
    )
    cluster = Cluster(tmp_path, env, schema_url)
    try:
        for _ in range(3):
            await cluster.spawn()
        faults, envelopes, commands = await _inject(
            cluster, engine, slack, telegram, random.Random(20261125)
        )

        drained = await _wait_drained(engine)
        await until(
            lambda: len(_status_replies(telegram)) >= len(commands),
            timeout=15,
            what="every Telegram command answered",
        )
        roles = await _roles(cluster)
    finally:
        await _shutdown(cluster, sim, slack, telegram)

    rows = _outbox_rows(engine)
    shared, polls = _shared_windows(sim_log, faults)
    alerts, duplicates = _deliveries(rows, slack, telegram)
    waits = sorted((row.sent_at - row.created_at).total_seconds() for row in rows)
    slack_answers = [len(slack.answers(e)) for e in envelopes]
    command_replies = len(_status_replies(telegram))

    print(f"\n{len(faults)} leader failures over {polls} polls, {len(alerts)} alerts:")
    for f in faults:
        first = f"{f.first_poll:.2f}s" if f.first_poll is not None else "-"
        print(
            f"  {f.kind:<6} {f.victim:>3} -> {f.successor:<3} takeover {f.takeover:.2f}s, "
            f"successor's first poll {first}"
        )
    print(
        f"cycle to delivery: median {waits[len(waits) // 2]:.2f}s, "
        f"p99 {waits[int(len(waits) * 0.99)]:.2f}s, max {waits[-1]:.2f}s "
        "(a replica killed mid-send leaves its claim for GEXBOT_DELIVERY_LEASE=3s)"
    )
    print(
        f"max takeover {max(f.takeover for f in faults):.2f}s (limit {2 * PERIOD:g}s = 2 poll "
        f"intervals); refresh windows polled by two replicas: {len(shared)}; duplicate "
        f"deliveries (sent, mark lost): {duplicates}; Slack answers per command: "
        f"{sorted(set(slack_answers))}; Telegram replies {command_replies} to "
        f"{len(commands)} commands; overlapping getUpdates: {telegram.overlaps}; roles {roles}"
    )

    leaders = {name for name, (role, _) in roles.items() if role == "leader"}
    assert len(leaders) == 1, roles
    assert {leader for _, leader in roles.values()} == leaders, roles
    assert len(alerts) >= len(FAULTS) // 2, "too few alerts to prove anything"
    assert _states_until(rows, drained) == {"sent"}
    assert all(channels == {"desk", "me"} for channels in alerts.values())
    assert shared == [], f"two replicas polled refresh windows {shared}"
    assert max(f.takeover for f in faults) <= 2 * PERIOD
    first_polls = [f.first_poll for f in faults]
    assert all(x is not None and x <= 2 * PERIOD + 0.5 for x in first_polls), first_polls
    assert slack_answers == [1] * len(envelopes)
    assert command_replies >= len(commands)
    assert duplicates <= len(FAULTS)


# -- the cadence across failovers: default lease, 1 s polls against a 1 s upstream --------------

CADENCE = 1.0  # the simulator's refresh and GEXBOT_POLL_INTERVAL; the lease stays at 10 s


@dataclass
class Term:
    """One successor's term, as the simulator's request log and the outbox saw it."""

    kind: str
    victim: str
    successor: str
    at: float  # when the leader was failed (wall clock)
    takeover: float  # seconds until the successor held the lease
    until: float = 0.0  # when the term's observation ended
    polls: list[float] = field(default_factory=list)  # the successor's poll times
    first_alert_age: float | None = None  # data age of the term's first alert

    @property
    def second_poll(self) -> float | None:
        return self.polls[1] - self.at if len(self.polls) > 1 else None

    @property
    def rate(self) -> float:
        """Polls per second from the successor's first poll to the end of the term."""
        if len(self.polls) < 2:
            return 0.0
        return (len(self.polls) - 1) / (self.polls[-1] - self.polls[0])


def _polls_by(sim_log: Path, name: str, start: float, end: float) -> list[float]:
    entries = [json.loads(line) for line in sim_log.read_text().splitlines()]
    return sorted(
        e["t"]
        for e in entries
        if e["path"] == "/v2/multi/gex/levels" and _instance(e) == name and start < e["t"] <= end
    )


@dataclass
class CadenceRun:
    """What the cadence scenario recorded."""

    terms: list[Term] = field(default_factory=list)
    frozen_polls: list[float] = field(default_factory=list)  # the frozen leader's, after waking
    restart_polls: list[float] = field(default_factory=list)  # a lone replica's, after downtime
    drained: int = 0  # the last outbox id when the outbox was seen drained


async def _fail_leader(cluster: Cluster, engine: Engine, kind: str) -> Term:
    def live() -> Lease | None:
        lease = _lease(engine)
        return lease if lease is not None and lease.live else None

    lease = live()
    assert lease is not None, "no leader"
    victim = cluster.replicas[lease.holder]
    at = time.time()
    victim.proc.send_signal(signal.SIGKILL if kind == "kill" else signal.SIGSTOP)

    def taken(old: Lease = lease) -> bool:
        new = live()
        return new is not None and new.term > old.term

    await until(taken, timeout=20, what=f"a takeover after a {kind}")
    successor = live()
    assert successor is not None
    return Term(kind, victim.name, successor.holder, at, time.time() - at)


async def _cadence_scenario(cluster: Cluster, engine: Engine, sim_log: Path) -> CadenceRun:
    """Three SIGKILLs and a SIGSTOP of the leader, then all down for five refreshes and one
    replica back. The sleeps are observation windows (each term is watched for a while), not
    waits for something to happen: those wait on the lease row."""
    run = CadenceRun()
    for _ in range(2):
        await cluster.spawn()
    await until(lambda: _lease(engine) is not None, timeout=20, what="a first leader")
    await asyncio.sleep(4.0)
    for _ in range(3):
        term = await _fail_leader(cluster, engine, "kill")
        await asyncio.sleep(4.5)
        term.until = time.time()
        run.terms.append(term)
        await cluster.replicas[term.victim].proc.wait()
        await cluster.spawn()  # a new standby for the next failover
        await asyncio.sleep(1.5)
    term = await _fail_leader(cluster, engine, "freeze")
    await asyncio.sleep(2.0)
    resumed = time.time()
    cluster.replicas[term.victim].proc.send_signal(signal.SIGCONT)  # it believes it leads
    await asyncio.sleep(5.0)
    term.until = time.time()
    run.terms.append(term)
    run.frozen_polls = _polls_by(sim_log, term.victim, resumed, term.until)
    await cluster.stop_all()
    await asyncio.sleep(5.0)  # five upstream refreshes with nobody polling
    cluster.replicas.clear()
    alone = await cluster.spawn()
    restarted = time.time()
    await asyncio.sleep(6.0)
    run.restart_polls = _polls_by(sim_log, alone.name, restarted, time.time())

    run.drained = await _wait_drained(engine)
    for term in run.terms:
        term.polls = _polls_by(sim_log, term.successor, term.at, term.until)
    return run


def _first_alert_ages(rows: list[Any], terms: list[Term]) -> None:
    for term in terms:
        after = sorted((r for r in rows if r.created_at.timestamp() > term.at), key=lambda r: r.id)
        if after:
            computed = datetime.fromisoformat(after[0].payload["computed_at"])
            term.first_alert_age = (after[0].created_at - computed).total_seconds()


@pytest.mark.slow
async def test_a_successor_keeps_the_poll_cadence_after_kills_a_freeze_and_a_restart(
    tmp_path: Path, ha_db: tuple[Engine, str]
) -> None:
    engine, schema_url = ha_db
    sim_log = tmp_path / "requests.jsonl"
    sim, sim_url = await _start_sim(tmp_path, sim_log, period=CADENCE, steps=400)
    slack, telegram = FakeSlack(), FakeTelegram()
    await slack.start()
    await telegram.start()
    env = _replica_env(tmp_path, sim_url, slack, telegram, interval=CADENCE)
    cluster = Cluster(tmp_path, env, schema_url)
    try:
        run = await _cadence_scenario(cluster, engine, sim_log)
    finally:
        await _shutdown(cluster, sim, slack, telegram)

    rows = _outbox_rows(engine)
    _first_alert_ages(rows, run.terms)
    alerts, duplicates = _deliveries(rows, slack, telegram)
    restart_gaps = [b - a for a, b in itertools.pairwise(run.restart_polls)]
    print(f"\n{len(run.terms)} failovers at a {CADENCE:g}s poll interval and refresh, 10 s lease:")
    for t in run.terms:
        second = f"{t.second_poll:.2f}s" if t.second_poll is not None else "-"
        age = f"{t.first_alert_age:.2f}s" if t.first_alert_age is not None else "-"
        print(
            f"  {t.kind:<6} {t.victim:>3} -> {t.successor:<3} takeover {t.takeover:.2f}s, "
            f"second poll {second}, {t.rate:.2f} polls/s, first alert's data age {age}"
        )
    print(
        f"frozen leader's polls after waking: {len(run.frozen_polls)}; restart after 5 s down: "
        f"gaps {[round(g, 2) for g in restart_gaps]}; {len(alerts)} alerts, duplicates "
        f"(sent, mark lost) {duplicates}"
    )

    for t in run.terms:
        limit = 3.0 if t.kind == "kill" else 1.5 * 10.0
        assert t.takeover <= limit, (t.kind, t.takeover)
        assert len(t.polls) >= 3, (t.kind, t.polls)
        gaps = [b - a for a, b in itertools.pairwise(t.polls)]
        assert max(gaps) <= 1.6 * CADENCE, (t.kind, gaps)  # every ~1 s from the first poll on
        assert t.first_alert_age is not None
        assert t.first_alert_age <= 2.5 * CADENCE, (t.kind, t.first_alert_age)
    assert run.frozen_polls == [], "the frozen leader polled after waking"
    assert len(run.restart_polls) >= 4, run.restart_polls
    assert max(restart_gaps) <= 1.6 * CADENCE, restart_gaps
    assert _states_until(rows, run.drained) == {"sent"}
    assert all(channels == {"desk", "me"} for channels in alerts.values())
    assert duplicates <= 3  # at most one per SIGKILL: sent, then killed before the mark
