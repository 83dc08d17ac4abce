"""Chat commands: what a trader types (and Discord's slash command), parsed, and the replies."""
