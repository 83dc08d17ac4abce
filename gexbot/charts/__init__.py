"""The levels chart: rendering (matplotlib, imported only here) and the per-refresh cache."""
