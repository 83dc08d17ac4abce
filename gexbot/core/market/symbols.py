"""The symbol universe: spelling, aliases and request bundling."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

#: BackQuant's documented enum, exact case (backquant-v2.md §3).
SUPPORTED_SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT")

#: The multi endpoint takes at most 8 symbols per request (backquant-v2.md §5.1).
MAX_SYMBOLS_PER_REQUEST = 8

_QUOTE = "USDT"

#: What a symbol can look like at all: a name upstream echoes in any other shape is not one.
SYMBOL_SHAPE = re.compile(r"[A-Z0-9]{2,24}")


def normalize_symbol(text: str) -> str:
    """Spell a user-typed symbol as the API does: `btc`, `BTC` and `btcusdt` become `BTCUSDT`.

    Unknown names are upper-cased and returned as they are; the API (or `gexbot check`)
    reports them as invalid rather than this function guessing.
    """
    sym = text.strip().upper().replace("/", "").replace("-", "")
    if sym and not sym.endswith(_QUOTE) and sym + _QUOTE in SUPPORTED_SYMBOLS:
        return sym + _QUOTE
    return sym


def dedupe(symbols: Iterable[str]) -> list[str]:
    """Remove duplicates keeping the caller's order, as the API does."""
    return list(dict.fromkeys(s for s in symbols if s))


def chunks(symbols: Iterable[str], size: int = MAX_SYMBOLS_PER_REQUEST) -> Iterator[list[str]]:
    """Split the de-duplicated universe into bundles the multi endpoint accepts."""
    unique = dedupe(symbols)
    for i in range(0, len(unique), size):
        yield unique[i : i + size]


def suggest_symbol(text: str, known: Iterable[str] = SUPPORTED_SYMBOLS) -> str | None:
    """The closest supported symbol to a misspelling, for error hints."""
    import difflib  # noqa: PLC0415 - only needed on the error path

    matches = difflib.get_close_matches(text.upper(), list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None
