"""Slack over HTTP: `POST /slack/commands`, `/slack/events` and `/slack/interactivity` (the
alerts' buttons) on GEXBOT_HTTP_PORT.

For workspaces that do not allow Socket Mode. Every request must carry a valid
`X-Slack-Signature` for GEXBOT_SLACK_SIGNING_SECRET over the raw body, with a timestamp less
than five minutes old (slack-sdk's `SignatureVerifier`); anything else is answered 401 and
never parsed further. Slash commands are answered in the response; events are acknowledged at
once and handled afterwards, because Slack retries what is not acknowledged within 3 s.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import parse_qsl

from aiohttp import web
from slack_sdk.signature import Clock, SignatureVerifier

from gexbot.chat.bodies import json_object
from gexbot.chat.slack import SlackCommands

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # slash commands and mention events are a few KB


class SlackEndpoint:
    """The two routes, bound to one SlackCommands."""

    def __init__(
        self, commands: SlackCommands, signing_secret: str, *, clock: Clock | None = None
    ) -> None:
        self._commands = commands
        self._verifier = SignatureVerifier(signing_secret, clock or Clock())

    def add_routes(self, app: web.Application) -> None:
        """Mount `/slack/commands` and `/slack/events` on `app`."""
        app.router.add_post("/slack/commands", self._commands_route)
        app.router.add_post("/slack/events", self._events_route)
        app.router.add_post("/slack/interactivity", self._interactivity_route)

    async def _verified(self, request: web.Request) -> bytes | None:
        if (request.content_length or 0) > MAX_BODY:
            return None
        body = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature")
        if not timestamp.isdigit() or not self._verifier.is_valid(body, timestamp, signature):
            log.warning("refused a Slack request with a missing, stale or wrong signature")
            return None
        return body

    async def _commands_route(self, request: web.Request) -> web.Response:
        body = await self._verified(request)
        if body is None:
            return web.Response(status=401, text="invalid signature")
        payload = dict(parse_qsl(body.decode("utf-8", "replace")))
        answer = await self._commands.slash(payload, uuid.uuid4().hex)
        if answer is None:
            return web.Response(status=200)  # answered by another replica or delivery
        response, reply = answer
        self._commands.background.start(self._commands.after_slash(payload, reply))
        return web.json_response(response)

    async def _events_route(self, request: web.Request) -> web.Response:
        body = await self._verified(request)
        if body is None:
            return web.Response(status=401, text="invalid signature")
        payload = json_object(body)
        if isinstance(payload, web.Response):
            return payload
        if payload.get("type") == "url_verification":
            return web.json_response({"challenge": payload.get("challenge", "")})
        if payload.get("type") == "event_callback":
            self._commands.background.start(self._commands.event(payload, uuid.uuid4().hex))
        return web.Response(status=200)

    async def _interactivity_route(self, request: web.Request) -> web.Response:
        """A button press: acknowledged at once, handled afterwards (on any replica)."""
        body = await self._verified(request)
        if body is None:
            return web.Response(status=401, text="invalid signature")
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        payload = json_object(form.get("payload", "").encode())
        if isinstance(payload, web.Response):
            return payload
        self._commands.background.start(self._commands.interaction(payload))
        return web.Response(status=200)

    async def close(self) -> None:
        """Let handling in flight finish (bounded)."""
        await self._commands.background.drain()
