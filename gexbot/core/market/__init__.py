"""Market data: the wire format, snapshots and symbols, and when and how to poll."""
