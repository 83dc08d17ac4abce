"""What each level and regime is called wherever a trader reads it: one table for alert text,
chat replies, the terminal's levels table, the web console and the chart."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from gexbot.core.chains.venues import Venue
from gexbot.core.market.snapshot import Level, Regime, SymbolSnapshot


@dataclass(frozen=True, slots=True)
class Label:
    """A level's name mid-sentence (`long`) and in a narrow column or a chart legend (`short`)."""

    long: str
    short: str

    def title(self, *, short: bool = False) -> str:
        """The name starting a table row: `Call resistance` (only the first letter raised, so
        `HVL` and `0DTE` stay as they are)."""
        text = self.short if short else self.long
        return text[:1].upper() + text[1:]


#: Every level, top down as a table lists them.
LABELS: MappingProxyType[Level, Label] = MappingProxyType(
    {
        Level.CALL_WALL_3: Label("call wall 3", "call wall 3"),
        Level.CALL_WALL_2: Label("call wall 2", "call wall 2"),
        Level.CALL_RESISTANCE: Label("call resistance", "call resist."),
        Level.HVL: Label("HVL", "HVL"),
        Level.ZERO_GAMMA: Label("zero gamma", "zero gamma"),
        Level.PUT_SUPPORT: Label("put support", "put support"),
        Level.PUT_WALL_2: Label("put wall 2", "put wall 2"),
        Level.PUT_WALL_3: Label("put wall 3", "put wall 3"),
        Level.ODTE_CALL_RESISTANCE: Label("0DTE call resistance", "0DTE call"),
        Level.ODTE_HVL: Label("0DTE HVL", "0DTE HVL"),
        Level.ODTE_PUT_SUPPORT: Label("0DTE put support", "0DTE put"),
        Level.MAX_PAIN: Label("max pain", "max pain"),
        Level.EM_UPPER_2SD: Label("expected move +2σ", "EM +2σ"),
        Level.EM_UPPER_1SD: Label("expected move +1σ", "EM +1σ"),
        Level.EM_LOWER_1SD: Label("expected move −1σ", "EM −1σ"),
        Level.EM_LOWER_2SD: Label("expected move −2σ", "EM −2σ"),
    }
)

#: The bands a rule's `outside:` names, which are not levels of their own.
_BANDS = MappingProxyType(
    {
        "expected_move_1sd": "the 1σ expected move",
        "expected_move_2sd": "the 2σ expected move",
    }
)


def level_label(name: str) -> str:
    """How a level or band, by its rule-language name, reads in a sentence
    (`call_resistance` → `call resistance`); an unknown name reads as itself."""
    if name in _BANDS:
        return _BANDS[name]
    try:
        return LABELS[Level(name)].long
    except ValueError:
        return name


#: A regime with what it means for the tape, as every surface writes it.
REGIME_TEXT: MappingProxyType[Regime, str] = MappingProxyType(
    {
        Regime.ABOVE_HVL: "above HVL: dealers damp moves",
        Regime.BELOW_HVL: "below HVL: moves amplified",
        Regime.AT_HVL: "at HVL",
        Regime.UNKNOWN: "regime unknown",
    }
)


_VENUE_NAMES = MappingProxyType({v.value: v.display for v in Venue})


def venues_name(venues: tuple[str, ...]) -> str:
    """The venues whose chains went in, as an alert names them: `Deribit + Bybit chains`."""
    names = [_VENUE_NAMES.get(v, v) for v in venues]
    return f"{' + '.join(names) or 'the venues'} chains"


def source_name(snap: SymbolSnapshot) -> str:
    """Where a snapshot's levels come from: `BackQuant`, or `Deribit + Bybit chains`."""
    return "BackQuant" if snap.chain is None else venues_name(snap.chain.venues)
