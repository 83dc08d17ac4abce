"""The rule language: rule files (YAML, located errors) parsed into frozen rules."""
