"""Decisions: rules evaluated on a snapshot, the alert lifecycle, and the events it emits."""
