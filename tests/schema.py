"""Validators for BackQuant's published OpenAPI schemas (gexbot/sim/openapi-v2.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tests.conftest import OPENAPI


def load_json(path: Path) -> Any:
    """Decode a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


_COMPONENTS = load_json(OPENAPI)["components"]


def validator(schema_name: str) -> Draft202012Validator:
    """A validator for one component schema, with `$ref`s resolved inside the document."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _COMPONENTS}
    return Draft202012Validator(schema)


MULTI_VALIDATOR = validator("MultiGexLevelsResponse")
LEVELS_VALIDATOR = validator("GexLevelsResponse")
ERROR_VALIDATOR = validator("V2ErrorEnvelope")
META_VALIDATOR = validator("V2Meta")
