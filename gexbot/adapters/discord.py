"""Discord delivery through discord.py's HTTP client.

Why discord.py's `HTTPClient` rather than hand-written httpx: it keeps Discord's rate-limit
buckets the way Discord describes them (the `X-RateLimit-*` headers read on every response,
one bucket per route and channel, so one busy channel never holds up another), waits a 429's
`retry_after` for that bucket or, for the global limit, for every request, and treats
401/403/404 as errors rather than retrying them. Waits longer than `MAX_RATE_LIMIT_WAIT` come
back as `RateLimited`, which this adapter turns into an outbox retry at that time, so a long
limit never pins a delivery worker.

Every foreign error leaves here as a `DeliveryError` naming Discord's status and code, never
the token (it travels in a header only).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import discord
from discord.http import HTTPClient, Route

from gexbot.adapters.notify import DeliveryError
from gexbot.core.alerts.buttons import actions_for
from gexbot.core.present.render import (
    CHART_FILE,
    Rendered,
    discord_chart_message,
    discord_components,
    discord_message,
)

log = logging.getLogger(__name__)

MAX_RATE_LIMIT_WAIT = 30.0  # seconds the client may sleep on a 429; longer: the outbox retries
REQUEST_TIMEOUT = 20.0
#: Discord's codes for "this channel refuses the bot" (discord.com/developers/docs/topics/
#: opcodes-and-status-codes): Missing Access, Missing Permissions, Unknown Channel.
UNREACHABLE_CODES = frozenset({50001, 50013, 10003})


def use_api(url: str) -> None:
    """Point discord.py at `url` (its own mechanism: one base URL for the process)."""
    Route.BASE = url.rstrip("/")


def translate(exc: BaseException, what: str) -> DeliveryError:
    """A discord.py, aiohttp or timeout error as a `DeliveryError` (`what`: the destination)."""
    if isinstance(exc, discord.LoginFailure):
        return DeliveryError(f"{what}: the bot token was refused (HTTP 401)", permanent=True)
    if isinstance(exc, discord.RateLimited):
        return DeliveryError(f"{what}: rate limited", retry_after=exc.retry_after)
    if isinstance(exc, discord.DiscordServerError):
        return DeliveryError(f"{what}: HTTP {exc.status}")
    if isinstance(exc, discord.HTTPException):
        code = f", code {exc.code}" if exc.code else ""
        text = f"{what}: HTTP {exc.status}{code}"
        if exc.status == 401:
            return DeliveryError(f"{what}: the bot token was refused (HTTP 401)", permanent=True)
        if exc.code in UNREACHABLE_CODES or exc.status == 404:
            return DeliveryError(f"{text} ({_reason(exc)})", unreachable=True)
        if exc.status == 429:  # a 429 without Discord's marks (a proxy, Cloudflare): back off
            return DeliveryError(f"{text} (rate limited upstream of Discord)", retry_after=60.0)
        if 400 <= exc.status < 500:
            return DeliveryError(f"{text} ({_reason(exc)})", permanent=True)
        return DeliveryError(text)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"{what}: timed out")
    return DeliveryError(f"{what}: {type(exc).__name__}")


def _reason(exc: discord.HTTPException) -> str:
    # Discord's own short message ("Missing Access"); it never quotes the request.
    return (exc.text.splitlines()[0] if exc.text else "refused")[:120]


class DiscordRest:
    """One logged-in discord.py HTTP client, made on first use inside the event loop."""

    def __init__(self, token: str, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self._token = token
        self._timeout = timeout
        self._http: HTTPClient | None = None
        self._login = asyncio.Lock()
        self._refused = False  # a 401 once: every request would be refused the same way

    async def request(self, route: Route, what: str, **kwargs: Any) -> Any:
        """`route` with discord.py's buckets, within the timeout; errors as DeliveryError."""
        if self._refused:
            raise DeliveryError(f"{what}: the bot token was refused (HTTP 401)", permanent=True)
        try:
            async with asyncio.timeout(self._timeout):
                http = await self._client()
                return await http.request(route, **kwargs)
        except (discord.DiscordException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._refused = isinstance(exc, discord.LoginFailure) or (
                isinstance(exc, discord.HTTPException) and exc.status == 401
            )
            raise translate(exc, what) from None

    async def _client(self) -> HTTPClient:
        async with self._login:
            if self._http is None:
                http = HTTPClient(
                    asyncio.get_running_loop(), max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT
                )
                try:
                    await http.static_login(self._token)
                except BaseException:
                    await http.close()
                    raise
                self._http = http
            return self._http

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._http is not None:
            await self._http.close()
            self._http = None


def file_form(payload: Mapping[str, object], png: bytes) -> list[dict[str, Any]]:
    """A multipart body: `payload_json` and the chart as `files[0]` (Discord's attachment
    form)."""
    body = {**payload, "attachments": [{"id": 0, "filename": CHART_FILE}]}
    return [
        {"name": "payload_json", "value": json.dumps(body), "content_type": "application/json"},
        {"name": "files[0]", "value": png, "filename": CHART_FILE, "content_type": "image/png"},
    ]


class DiscordNotifier:
    """Posts embeds to Discord channels."""

    platform = "discord"
    groups = True

    def __init__(self, rest: DiscordRest) -> None:
        # The bot's one client: commands reply through it too, so one token keeps one set of
        # rate-limit buckets (Discord's global limit is per bot). The notifier closes it.
        self.rest = rest

    async def send(
        self,
        target: str,
        items: Sequence[Rendered],
        *,
        reply_to: str | None = None,
        buttons: str | None = None,
    ) -> str | None:
        """`POST /channels/{id}/messages`; the message id is the provider id. A follow-up
        replies to the original (`message_reference`; posted plainly if it was deleted)."""
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=target)
        body = discord_message(items)
        event = items[0].event if len(items) == 1 else None
        if buttons is not None and event is not None:
            body["components"] = discord_components(buttons, actions_for(event.rule_id))
        if reply_to is not None:
            body["message_reference"] = {
                "message_id": reply_to,
                "channel_id": target,
                "fail_if_not_exists": False,
            }
            body["allowed_mentions"] = {"replied_user": False, "parse": []}
        data = await self.rest.request(route, f"discord:{target}", json=body)
        return str(data["id"]) if isinstance(data, dict) and "id" in data else None

    async def send_image(self, target: str, png: bytes, title: str) -> None:
        """The chart as an attached file shown in an embed."""
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=target)
        form = file_form(discord_chart_message(title), png)
        await self.rest.request(route, f"discord:{target}", form=form)

    async def close(self) -> None:
        """Release the HTTP session."""
        await self.rest.close()
