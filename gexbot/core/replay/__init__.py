"""Replay: history as columns, walked by the same decisions as the live bot."""
