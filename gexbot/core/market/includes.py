"""Which optional sections the rules need from the bundle endpoint (ask for nothing more)."""

from __future__ import annotations

from collections.abc import Iterable

from gexbot.core.language.model import ConditionKind, Rule


def required_includes(rules: Iterable[Rule]) -> list[str]:
    """`include=` tokens the rules' levels come from."""
    need: set[str] = set()
    for rule in rules:
        cond = rule.condition
        if cond.kind is ConditionKind.OUTSIDE:
            need.add("expected_move")
        elif cond.level is not None:
            if cond.level.value.startswith("expected_move."):
                need.add("expected_move")
            elif cond.level.value == "max_pain":
                need.add("max_pain")
    return sorted(need)
