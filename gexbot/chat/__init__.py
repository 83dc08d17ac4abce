"""Chat commands: one service answering them, and one loop per platform feeding it."""
