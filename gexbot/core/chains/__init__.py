"""Levels from the venues' public option chains: each venue's names and units read into one
set of contracts, and BackQuant's `std` levels (plus zero gamma and roll-off) computed from it."""
