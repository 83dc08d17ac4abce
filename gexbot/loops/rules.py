"""Reading rule files from disk (`GEXBOT_RULES`: a file or a directory) and watching them."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gexbot.core.language.model import Location, Rule, RuleSet
from gexbot.core.language.rulefile import (
    ParsedFile,
    Problem,
    RulesError,
    build_ruleset,
    parse_rule_file,
)
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS

log = logging.getLogger(__name__)

RULE_SUFFIXES = (".yaml", ".yml")


def rule_files(path: Path, *, setting: str) -> list[Path]:
    """The rule files at `path`, in name order; RulesError naming `setting` (the variable the
    path came from) if there are none."""
    where = Location(str(path), 1, 1)
    var = setting
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())
        if not files:
            raise RulesError([Problem(where, f"{var}: no *.yaml rule files in this directory")])
        return files
    raise RulesError([Problem(where, f"{var}: no such file or directory")])


def load_rules(path: Path, *, setting: str, universe: Sequence[str] = SUPPORTED_SYMBOLS) -> RuleSet:
    """Read, parse and merge every rule file at `path` (named by the variable `setting`);
    RulesError lists every problem."""
    parsed: list[ParsedFile] = []
    for file in rule_files(path, setting=setting):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            parsed.append(
                ParsedFile(
                    str(file), problems=[Problem(Location(str(file), 1, 1), f"cannot read: {exc}")]
                )
            )
            continue
        parsed.append(parse_rule_file(text, str(file), universe=universe))
    return build_ruleset(parsed)


def fingerprint(path: Path) -> str:
    """A digest of the rule files' names and contents: changes when any file does."""
    digest = hashlib.sha256()
    try:
        files = rule_files(path, setting="")
    except RulesError:
        return ""
    for file in files:
        digest.update(str(file).encode())
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Reload:
    """The outcome of a reload: the new rules, or the problems that kept the old ones."""

    rules: RuleSet
    changed_ids: frozenset[str]  # rules added, removed or redefined: their state starts fresh
    problems: tuple[Problem, ...] = ()

    @property
    def accepted(self) -> bool:
        """True when the new files were valid and are now active."""
        return not self.problems


class RulesWatcher:
    """Keeps the active rules; reloads on demand (SIGHUP) or when the files change.

    An invalid new version is refused with its located problems and the previous rules stay.
    """

    def __init__(
        self, path: Path, rules: RuleSet, *, universe: Sequence[str], setting: str
    ) -> None:
        self.path = path
        self._setting = setting
        self.rules = rules
        self._universe = universe
        self._seen = fingerprint(path)

    def changed_on_disk(self) -> bool:
        """True when the files differ from the version last loaded or refused."""
        return fingerprint(self.path) != self._seen

    def reload(self) -> Reload:
        """Load the files again; keep the old rules when the new ones are invalid."""
        self._seen = fingerprint(self.path)
        try:
            new = load_rules(self.path, universe=self._universe, setting=self._setting)
        except RulesError as exc:
            for problem in exc.problems:
                log.error("rules not reloaded: %s", problem)
            return Reload(self.rules, frozenset(), tuple(exc.problems))
        changed = _changed(self.rules.rules, new.rules)
        self.rules = new
        log.info("rules reloaded: %d rules, %d changed", len(new.rules), len(changed))
        return Reload(new, changed)


def _changed(old: Sequence[Rule], new: Sequence[Rule]) -> frozenset[str]:
    before = {r.id: r for r in old}
    after = {r.id: r for r in new}
    return frozenset(
        rid for rid in before.keys() | after.keys() if before.get(rid) != after.get(rid)
    )
