"""Personal alerts: the chat grammar (pure), the store, and the cycle that evaluates them."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from gexbot.core.alerts.audience import Mute, Scope
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.states import AlertStatus, NotifyReason
from gexbot.core.language.model import Rule
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file
from gexbot.core.market.snapshot import BundleSnapshot
from gexbot.core.personal.grammar import AlertSyntaxError, PersonalAlert, parse_alert
from gexbot.core.personal.index import PersonalIndex
from gexbot.core.present.render import render
from gexbot.loops.cycle import Pipeline
from gexbot.store import engine as store_engine
from gexbot.store.ops import add_mute
from gexbot.store.outbox import OutboxState
from gexbot.store.personal import (
    Created,
    changes_since,
    chat_alert_ids,
    counts_by_platform,
    create_alert,
    delete_alerts,
    list_alerts,
    pause_chat,
    resume_chat,
)
from gexbot.store.tables import alert_state, outbox
from tests.rulekit import T0, Stepper, bundle, snapshot

# -- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("btc crosses hvl", "BTCUSDT crosses hvl band 0.1%"),
        ("BTC crosses HVL up band 0.3%", "BTCUSDT crosses hvl up band 0.3%"),
        ("eth near cr 0.5%", "ETHUSDT near call_resistance 0.5%"),
        ("eth near ps 120", "ETHUSDT near put_support 120"),
        ("sol below 150 once", "SOLUSDT below 150 once"),
        ("sol above $150.5", "SOLUSDT above 150.5"),
        ("hype above mp", "HYPEUSDT above max_pain"),
        ("btc below 0dte.hvl for 5m", "BTCUSDT below odte.hvl for 5m"),
        ("btcusdt outside em", "BTCUSDT outside em"),
        ("btc outside em2 cooldown 1h", "BTCUSDT outside em2 cooldown 1h"),
        ("btc moved cr 1%", "BTCUSDT moved call_resistance 1%"),
        ("btc moved call_wall_2 500", "BTCUSDT moved call_wall_2 500"),
        (
            "btc crosses ps down for 2m cooldown 30m once",
            "BTCUSDT crosses put_support down band 0.1% for 2m cooldown 30m once",
        ),
    ],
)
def test_typed_alerts_parse_to_their_full_spelling_and_back(typed: str, canonical: str) -> None:
    request = parse_alert(typed)
    assert request.canonical() == canonical
    assert parse_alert(canonical) == request


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("xrp crosses hvl", '"xrp" is not a symbol gexbot watches. Symbols: BTC, ETH, SOL, HYPE.'),
        ("etc crosses hvl", "did you mean ETH?"),
        ("btc crosses hvll", '"hvll" is not a level; did you mean hvl?'),
        ("btc crosess hvl", '"crosess" is not a condition; did you mean crosses?'),
        ("btc near cr", "near needs a band: near cr 0.5%"),
        ("btc near cr for 5m", "near needs a band: near cr 0.5%"),
        ("btc near cr wide", '"wide" is not a percentage or a price: near cr 0.5%'),
        ("btc near cr 80%", '"80%" is out of range'),
        ("btc crosses hvl for soon", '"soon" is not a duration: write for 30s, 15m, 2h or 1d.'),
        ("btc crosses hvl cooldown 40d", "cooldown lasts between 1 second and 30 days."),
        ("btc crosses hvl please", 'Unexpected "please" after the condition'),
        ("btc crosses hvl once once", '"once" is given twice.'),
        ("btc crosses 95000", "For a price: above 95000 or below 95000."),
        ("btc outside em3", '"em3" is not an expected-move band'),
        ("btc crosses hvl band 5", "A cross's band is a percentage"),
        ("btc", "The condition is missing"),
        ("btc crosses hvl " + "x" * 200, "That alert is too long (216 characters; at most 200)."),
    ],
)
def test_mistyped_alerts_name_the_word_and_what_fits(typed: str, says: str) -> None:
    with pytest.raises(AlertSyntaxError) as info:
        parse_alert(typed)
    assert says in str(info.value)
    assert "\n" not in str(info.value)


def _parses_or_explains(text: str) -> None:
    try:
        request = parse_alert(text)
    except AlertSyntaxError as exc:
        message = str(exc)
    else:
        assert parse_alert(request.canonical()) == request
        return
    assert message
    assert "\n" not in message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_gets_a_syntax_error(text: str) -> None:
    _parses_or_explains(text)


_WORDS = st.sampled_from(
    ["btc", "eth", "crosses", "near", "above", "below", "outside", "moved", "hvl", "cr", "ps",
     "em", "em2", "up", "down", "band", "0.5%", "150", "for", "5m", "cooldown", "1h", "once"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_WORDS, max_size=9))
def test_word_salad_parses_or_gets_a_syntax_error(words: list[str]) -> None:
    _parses_or_explains(" ".join(words))


# -- a personal alert and the equivalent YAML rule are the same rule --------------------------

EQUIVALENT = [
    ("btc crosses hvl", "{crosses: hvl, buffer_pct: 0.1}", ""),
    ("btc crosses hvl up band 0.3% for 1m", "{crosses: hvl, buffer_pct: 0.3, direction: up}", "1m"),
    ("btc near cr 0.5%", "{near: call_resistance, within_pct: 0.5}", ""),
    ("btc below 80000", "{below: 80000}", ""),
    ("btc above ps for 2m", "{above: put_support}", "2m"),
]
MARKET = [
    {"spot": s, "hvl": 80000.0, "call_resistance": 81000.0, "put_support": 79000.0}
    for s in (79500, 80050, 80200, 80500, 80700, 80950, 81100, 80600, 79950, 79800, 79700,
              78900, 78500, 79200, 79400, 80100, 80300, 80900, 81050, 80990, 79990, 79000)
]  # fmt: skip


@pytest.mark.parametrize(("typed", "when", "hold"), EQUIVALENT)
def test_a_personal_alert_and_its_yaml_rule_alert_alike_on_one_market(
    typed: str, when: str, hold: str
) -> None:
    yaml_text = (
        "channels: {me: {telegram: 42}}\n"
        f"rules:\n  - id: r\n    symbols: [BTCUSDT]\n    when: {when}\n    notify: [me]\n"
        + (f"    for: {hold}\n" if hold else "")
    )
    parsed = parse_rule_file(yaml_text, "r.yaml")
    yaml_rule = build_ruleset([parsed]).rules[0]
    personal = PersonalAlert(7, "telegram", "42", "1", parse_alert(typed), T0).rule()
    assert personal.condition == yaml_rule.condition
    assert (personal.hold, personal.cooldown) == (yaml_rule.hold, yaml_rule.cooldown)

    yaml_run, personal_run = Stepper(yaml_rule), Stepper(personal)
    assert yaml_run.run(MARKET) == personal_run.run(MARKET)
    assert [d.status.seq for d in yaml_run.sent] == [d.status.seq for d in personal_run.sent]
    assert yaml_run.sent, "the market must make the rule fire at least once"


# -- the store --------------------------------------------------------------------------------


def _create(
    db: Engine, typed: str = "btc crosses hvl", *, chat: str = "42", limit: int = 25
) -> PersonalAlert | Created:
    with db.begin() as conn:
        return create_alert(
            conn,
            platform="telegram",
            chat_id=chat,
            owner="111",
            request=parse_alert(typed),
            now=T0,
            limit=limit,
        )


def test_ids_are_never_reused_and_a_chat_deletes_only_its_own(db: Engine) -> None:
    first, second = _create(db), _create(db, chat="99")
    assert isinstance(first, PersonalAlert)
    assert isinstance(second, PersonalAlert)
    with db.begin() as conn:
        assert delete_alerts(conn, [second.id], now=T0, platform="telegram", chat_id="42") == []
        assert delete_alerts(conn, [second.id], now=T0, platform="telegram", chat_id="99") == [
            second.id
        ]
    third = _create(db)
    assert isinstance(third, PersonalAlert)
    assert third.id > second.id > first.id  # the deleted highest id is not handed out again
    with db.connect() as conn:
        assert [a.id for a in list_alerts(conn)] == [first.id, third.id]
        assert chat_alert_ids(conn, "telegram", "99") == []


def test_a_chat_past_its_limit_gets_limit_and_nothing_is_stored(db: Engine) -> None:
    assert isinstance(_create(db, limit=2), PersonalAlert)
    assert isinstance(_create(db, "eth near cr 0.5%", limit=2), PersonalAlert)
    assert _create(db, "sol below 150", limit=2) is Created.LIMIT
    assert isinstance(_create(db, "sol below 150", chat="7", limit=2), PersonalAlert)
    with db.connect() as conn:
        assert len(chat_alert_ids(conn, "telegram", "42")) == 2


def test_the_leader_reads_only_what_changed(db: Engine) -> None:
    a = _create(db)
    b = _create(db, "eth near cr 0.5% for 5m cooldown 1h once", chat="7")
    assert isinstance(a, PersonalAlert)
    assert isinstance(b, PersonalAlert)
    with db.connect() as conn:
        everything = changes_since(conn, 0)
    assert everything is not None
    assert {x.id: x.request for x in everything.live} == {a.id: a.request, b.id: b.request}
    with db.connect() as conn:
        assert changes_since(conn, everything.revision) is None
    with db.begin() as conn:
        delete_alerts(conn, [a.id], now=T0)
        assert pause_chat(conn, "telegram", "7", "telegram: forbidden (bot blocked)") == 1
    with db.connect() as conn:
        later = changes_since(conn, everything.revision)
        counts = counts_by_platform(conn)
        paused = list_alerts(conn, chat_id="7")
    assert later is not None
    assert later.live == ()
    assert sorted(later.gone) == sorted([a.id, b.id])
    assert counts == {"telegram": 1}
    assert paused[0].paused == "telegram: forbidden (bot blocked)"
    with db.begin() as conn:  # the chat asked again: it is reachable
        assert resume_chat(conn, "telegram", "7") == 1
        assert resume_chat(conn, "telegram", "7") == 0
    with db.connect() as conn:
        again = changes_since(conn, later.revision)
    assert again is not None
    assert [x.id for x in again.live] == [b.id]


# -- the cycle --------------------------------------------------------------------------------


def _market(spot: float, minute: int) -> BundleSnapshot:
    at = T0 + timedelta(minutes=minute)
    snap = snapshot(spot, at=at, hvl=80000.0, call_resistance=81000.0, put_support=79000.0)
    return bundle(snap, at=at)


def _outbox(db: Engine) -> list[tuple[str, str, str]]:
    with db.connect() as conn:
        rows = conn.execute(select(outbox).order_by(outbox.c.id))
        return [(r.alert_key, r.channel, r.payload.get("reason")) for r in rows]


def test_a_long_first_load_holds_no_transaction_open(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Indexing a million alerts takes seconds; PostgreSQL ends a session that sits that long
    # idle inside its transaction, and the leader's first cycle of every term failed.
    first = _create(db)
    assert isinstance(first, PersonalAlert)
    _create(db, "eth near cr 0.5%", chat="7")
    monkeypatch.setattr(store_engine, "PG_IDLE_IN_TRANSACTION_MS", 200)
    db.dispose()  # new connections take the short limit
    add = PersonalIndex.add

    def slow_add(self: PersonalIndex, rule: Rule, status: AlertStatus | None) -> None:
        time.sleep(0.4)  # the cost of a large index, in two alerts
        add(self, rule, status)

    monkeypatch.setattr(PersonalIndex, "add", slow_add)
    pipeline = Pipeline(db, index_rules([]))
    pipeline.run(_market(79500, 0), now=T0)
    pipeline.run(_market(80500, 1), now=T0 + timedelta(minutes=1))
    assert pipeline.personal_counts()["telegram"] == 2
    assert [key for key, _, _ in _outbox(db)] == [f"{first.rule_id}|BTCUSDT"]  # it crossed


def test_a_personal_alert_goes_to_its_chat_only_and_once_deletes_it(db: Engine) -> None:
    yaml = build_ruleset([parse_rule_file(
        "channels: {desk: {terminal: true}}\n"
        "rules:\n  - {id: desk-hvl, symbols: [BTCUSDT], when: {crosses: hvl}, notify: [desk]}\n",
        "r.yaml",
    )])  # fmt: skip
    pipeline = Pipeline(db, index_rules(yaml.rules))
    pipeline.run(_market(79500, 0), now=T0)  # baselines
    mine = _create(db, "btc crosses hvl once")
    theirs = _create(db, "btc above 80100", chat="7")
    assert isinstance(mine, PersonalAlert)
    assert isinstance(theirs, PersonalAlert)
    pipeline.run(_market(79600, 1), now=T0 + timedelta(minutes=1))  # the alerts' baselines
    assert pipeline.personal_counts() == {"telegram": 2, "slack": 0, "discord": 0}
    report = pipeline.run(_market(80400, 2), now=T0 + timedelta(minutes=2))

    sent = {(e.rule_id, e.once) for e in report.events}
    assert sent == {("desk-hvl", False), (mine.rule_id, True), (theirs.rule_id, False)}
    assert set(_outbox(db)) == {
        ("desk-hvl|BTCUSDT", "desk", "fired"),
        (f"{mine.rule_id}|BTCUSDT", "telegram:42", "fired"),
        (f"{theirs.rule_id}|BTCUSDT", "telegram:7", "fired"),
    }
    once = next(e for e in report.events if e.rule_id == mine.rule_id)
    text = "\n".join((render(once).headline, *render(once).details))
    assert f"alert {mine.rule_id}" in text
    assert "is now deleted" in text
    with db.connect() as conn:
        left = {a.id: a for a in list_alerts(conn)}
        states = {r.rule_id for r in conn.execute(select(alert_state.c.rule_id))}
    assert mine.id not in left
    assert mine.rule_id not in states
    assert pipeline.personal_counts() == {"telegram": 1, "slack": 0, "discord": 0}
    assert left[theirs.id].last_fired == T0 + timedelta(minutes=2)
    # Back down and up again: only the desk rule and the lasting alert can fire now.
    pipeline.run(_market(79500, 3), now=T0 + timedelta(minutes=3))
    again = pipeline.run(_market(80400, 4), now=T0 + timedelta(minutes=4))
    assert {e.rule_id for e in again.events} == {"desk-hvl", theirs.rule_id}


def test_mute_of_an_alert_id_silences_it_and_states_survive_a_restart(db: Engine) -> None:
    empty = index_rules([])
    alert = _create(db, "btc crosses hvl")
    assert isinstance(alert, PersonalAlert)
    Pipeline(db, empty).run(_market(79500, 0), now=T0)
    with db.begin() as conn:
        add_mute(conn, _rule_mute(alert.rule_id), by="telegram:111", now=T0)
    muted = Pipeline(db, empty).run(_market(80400, 1), now=T0 + timedelta(minutes=1))
    assert [d.reason for d in muted.result.decisions] == [NotifyReason.SILENCED]
    assert muted.events == ()
    # A new process (restart or failover) starts from the stored state: no second alert for
    # the same side, and the next real cross fires.
    restarted = Pipeline(db, empty)
    assert restarted.run(_market(80500, 2), now=T0 + timedelta(minutes=2)).events == ()
    restarted.run(_market(79500, 3), now=T0 + timedelta(minutes=70))
    assert [
        e.rule_id for e in restarted.run(_market(80500, 4), now=T0 + timedelta(minutes=71)).events
    ] == [alert.rule_id]


def test_an_alert_made_elsewhere_is_evaluated_from_the_next_cycle(db: Engine) -> None:
    pipeline = Pipeline(db, index_rules([]))
    pipeline.run(_market(79500, 0), now=T0)
    alert = _create(db, "btc above 80000")  # e.g. on a Slack standby
    assert isinstance(alert, PersonalAlert)
    report = pipeline.run(_market(80400, 1), now=T0 + timedelta(minutes=1))
    # A state condition already true on first sight records it (no alert for old news) ...
    assert [d.reason for d in report.result.decisions] == [NotifyReason.BASELINE]
    pipeline.run(_market(79900, 2), now=T0 + timedelta(minutes=2))
    fired = pipeline.run(_market(80100, 3), now=T0 + timedelta(minutes=3))
    assert [e.rule_id for e in fired.events] == [alert.rule_id]  # ... and fires on becoming true
    with db.begin() as conn:
        delete_alerts(conn, [alert.id], now=T0)
    pipeline.run(_market(79900, 4), now=T0 + timedelta(minutes=4))
    assert pipeline.run(_market(80100, 5), now=T0 + timedelta(minutes=5)).events == ()
    assert alert.id not in pipeline.personal
    with db.connect() as conn:
        assert OutboxState.PENDING.value in {r.state for r in conn.execute(select(outbox.c.state))}


def _rule_mute(rule_id: str) -> Mute:
    return Mute(Scope.RULE, rule_id, T0 + timedelta(hours=1))
