"""Personal alerts: what a trader types in a chat, and the index over a million of them."""
