"""Request bodies of the signed chat endpoints (Slack events, Discord interactions)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def json_object(body: bytes) -> dict[str, Any] | web.Response:
    """The body as a JSON object, or the 400 answer to send instead."""
    try:
        payload = json.loads(body)
    except ValueError:
        return web.Response(status=400, text="not JSON")
    if not isinstance(payload, dict):
        return web.Response(status=400, text="not a JSON object")
    return payload
