"""Discord `/gex` commands over the Interactions endpoint: `POST /discord/interactions`.

Discord POSTs each slash command to this URL and wants an answer within 3 seconds. Every
request must carry an Ed25519 signature (`X-Signature-Ed25519`) by the application's key over
`X-Signature-Timestamp + body`, checked with PyNaCl against GEXBOT_DISCORD_PUBLIC_KEY, and a
timestamp less than five minutes old; anything else gets 401 and is never parsed (Discord
itself sends bad signatures to check this). A PING gets a PONG.

Answers are ephemeral (only the asker sees them). One that is not ready within ANSWER_WITHIN
is deferred ("thinking…") and the reply edited in when it is; a chart follows as a file. With
GEXBOT_DISCORD_ALLOWED_USERS set, anyone else gets a private refusal and no data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from enum import StrEnum
from typing import Any, Protocol

import discord
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.http import Route
from discord.voice_client import VoiceClient
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from gexbot.adapters.discord import DiscordRest, file_form
from gexbot.adapters.notify import DeliveryError
from gexbot.chat.bodies import json_object
from gexbot.chat.buttons import ButtonPresses
from gexbot.chat.service import REFUSAL, Reply
from gexbot.core.commands.slash import (
    EPHEMERAL,
    ComponentPress,
    InteractionType,
    Invocation,
    ResponseType,
    read_invocation,
    read_press,
    registration,
    reply_data,
)
from gexbot.core.present.render import discord_chart_message
from gexbot.loops.waits import Background, sleep_or_stop

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_AGE = 300.0  # seconds a signed request stays valid
ANSWER_WITHIN = 2.0  # seconds before the answer is deferred (Discord's limit is 3)


class Answerer(Protocol):
    """What answers a command line (the ChatService)."""

    async def answer(self, text: str, *, platform: str, chat_id: str, user: str) -> Reply:
        """The reply; never raises for bad input."""
        ...


class DiscordInteractions:
    """The Interactions endpoint, bound to one ChatService."""

    def __init__(
        self,
        service: Answerer,
        rest: DiscordRest,
        *,
        public_key: str | None,
        allowed_users: Sequence[str] = (),
        wall_clock: Callable[[], float],
        answer_within: float = ANSWER_WITHIN,
        presses: ButtonPresses | None = None,
    ) -> None:
        self._presses = presses
        self._service = service
        self._rest = rest
        # None: commands come over the Gateway only, and the endpoint refuses everything.
        self._key = VerifyKey(bytes.fromhex(public_key)) if public_key else None
        self._allowed = frozenset(allowed_users)  # empty: every member
        self._clock = wall_clock
        self._answer_within = answer_within
        # Edits, follow-ups and charts run after the 3 s answer and never hold up the next.
        self.background = Background(log, "Discord command handling")

    def add_routes(self, app: web.Application) -> None:
        """Mount `/discord/interactions` on `app`."""
        app.router.add_post("/discord/interactions", self._route)

    def verified(self, body: bytes, timestamp: str, signature: str) -> bool:
        """Whether `body` was signed by the application's key, less than MAX_AGE ago."""
        if self._key is None:
            return False
        if not timestamp.isdigit() or abs(self._clock() - int(timestamp)) > MAX_AGE:
            return False
        try:
            self._key.verify(timestamp.encode() + body, bytes.fromhex(signature))
        except (BadSignatureError, ValueError):
            return False
        return True

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if (request.content_length or 0) > MAX_BODY:
            return web.Response(status=413, text="too large")
        body = await request.read()
        timestamp = request.headers.get("X-Signature-Timestamp", "")
        signature = request.headers.get("X-Signature-Ed25519", "")
        if not self.verified(body, timestamp, signature):
            log.warning("refused a Discord request with a missing, stale or wrong signature")
            return web.Response(status=401, text="invalid request signature")
        payload = json_object(body)
        if isinstance(payload, web.Response):
            return payload
        kind = payload.get("type")
        if kind == InteractionType.PING:
            return web.json_response({"type": ResponseType.PONG})
        if kind == InteractionType.MESSAGE_COMPONENT:
            press = read_press(payload)
            if press is None:
                return web.Response(status=400, text="not one of gexbot's buttons")
            return await self._answer(request, *await self.press(press))
        invocation = (
            read_invocation(payload) if kind == InteractionType.APPLICATION_COMMAND else None
        )
        if invocation is None:
            return web.Response(status=400, text="not a /gex command")
        return await self._answer(request, *await self.respond(invocation))

    async def _answer(
        self,
        request: web.Request,
        answer: dict[str, Any],
        after: Coroutine[Any, Any, None] | None,
    ) -> web.StreamResponse:
        """Send the interaction's answer, then start what follows it."""
        response = web.json_response(answer)
        await response.prepare(request)
        await response.write_eof()  # acknowledged: edits and follow-ups may now refer to it
        if after is not None:
            self.background.start(after)
        return response

    async def respond(
        self, inv: Invocation
    ) -> tuple[dict[str, Any], Coroutine[Any, Any, None] | None]:
        """The interaction response (the answer, or a deferral when it takes longer), and what
        to run once Discord has it: the deferred edit, the chart."""
        if self._allowed and inv.user not in self._allowed:
            log.warning(
                "refused a command from Discord user %s (not in GEXBOT_DISCORD_ALLOWED_USERS)",
                inv.user,
            )
            refusal = {"type": ResponseType.MESSAGE, "data": reply_data(REFUSAL, monospace=False)}
            return refusal, None
        task = asyncio.create_task(
            self._service.answer(inv.text, platform="discord", chat_id=inv.channel, user=inv.user)
        )
        done, _ = await asyncio.wait({task}, timeout=self._answer_within)
        if done:
            reply = task.result()
            data = reply_data(reply.text, monospace=reply.monospace)
            return {"type": ResponseType.MESSAGE, "data": data}, self._chart(inv, reply)
        deferred = {"type": ResponseType.DEFERRED, "data": {"flags": EPHEMERAL}}
        return deferred, self._finish(inv, task)

    async def press(
        self, p: ComponentPress
    ) -> tuple[dict[str, Any], Coroutine[Any, Any, None] | None]:
        """A button or menu choice on an alert: the message edited to say what was done
        (UPDATE_MESSAGE), or a private answer; a chart or the levels follow in its thread."""
        if self._presses is None:
            return {
                "type": ResponseType.MESSAGE,
                "data": reply_data("Buttons are off.", monospace=False),
            }, None
        outcome = await self._presses.press(
            p.data,
            platform="discord",
            chat_id=p.channel,
            user=p.user,
            who=f"@{p.username}",
            allowed=not self._allowed or p.user in self._allowed,
        )
        if outcome.line is not None:
            embeds = [dict(e) for e in p.message.get("embeds") or [] if isinstance(e, dict)]
            if embeds:
                fields = [*(embeds[0].get("fields") or []), {"name": "Done", "value": outcome.line}]
                embeds[0] = {**embeds[0], "fields": fields}
            data = {"embeds": embeds, "components": p.message.get("components") or []}
            return {"type": ResponseType.UPDATE_MESSAGE, "data": data}, None
        answer = {"type": ResponseType.MESSAGE, "data": reply_data(outcome.toast, monospace=False)}
        if outcome.reply is None:
            return answer, None
        return answer, self._in_thread(p, outcome.reply)

    async def _in_thread(self, p: ComponentPress, reply: Reply) -> None:
        """The levels or the chart as a reply to the alert's message."""
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=p.channel)
        reference = {
            "message_id": str(p.message.get("id", "")),
            "channel_id": p.channel,
            "fail_if_not_exists": False,
        }
        body = {**reply_data(reply.text, monospace=reply.monospace), "message_reference": reference}
        body.pop("flags", None)  # in the channel, for the desk, not ephemeral
        try:
            await self._rest.request(route, "discord thread reply", json=body)
            png = await reply.chart() if reply.chart is not None else None
            if png is not None:
                chart = {**discord_chart_message("GEX levels"), "message_reference": reference}
                await self._rest.request(route, "discord chart", form=file_form(chart, png))
        except DeliveryError as exc:
            log.warning("Discord thread reply failed (%s)", exc)

    async def _finish(self, inv: Invocation, task: asyncio.Task[Reply]) -> None:
        """The deferred answer, edited into the "thinking…" message; then the chart."""
        reply = await task
        route = _interaction_webhook("PATCH", inv, "/messages/@original")
        try:
            await self._rest.request(
                route, "discord reply", json=reply_data(reply.text, monospace=reply.monospace)
            )
        except DeliveryError as exc:
            log.warning("Discord reply edit failed (%s)", exc)
            return
        await self._chart(inv, reply)

    async def _chart(self, inv: Invocation, reply: Reply) -> None:
        """The chart after the text, as an ephemeral follow-up with the file."""
        png = await reply.chart() if reply.chart is not None else None
        if png is None:
            return
        payload = {**discord_chart_message("GEX levels"), "flags": EPHEMERAL}
        route = _interaction_webhook("POST", inv)
        try:
            await self._rest.request(route, "discord chart", form=file_form(payload, png))
        except DeliveryError as exc:  # the text reply went out already; the chart is extra
            log.warning("Discord chart follow-up failed (%s)", exc)

    async def close(self) -> None:
        """Let replies in flight finish (bounded)."""
        await self.background.drain()


def _interaction_webhook(method: str, inv: Invocation, tail: str = "") -> Route:
    """The interaction's webhook: its reply (`/messages/@original`) or a follow-up."""
    return Route(
        method,
        "/webhooks/{webhook_id}/{webhook_token}" + tail,
        webhook_id=inv.application_id,
        webhook_token=inv.token,
    )


async def register_commands(rest: DiscordRest, application_id: str) -> bool:
    """Register `/gex` and its sub-commands (a bulk overwrite: the same body twice changes
    nothing); False when Discord refused, logged."""
    route = Route("PUT", "/applications/{application_id}/commands", application_id=application_id)
    try:
        await rest.request(route, "discord command registration", json=registration())
    except DeliveryError as exc:
        log.error("Discord /gex command not registered (%s)", exc)
        return False
    log.info("Discord /gex command registered")
    return True


class DiscordCommands:
    """Discord's side of the chat loops: registers `/gex` at start, holds the Gateway when
    asked to, and lets replies in flight finish at the end. The client is the notifier's,
    which closes it."""

    def __init__(
        self,
        rest: DiscordRest,
        *,
        application_id: str | None,
        answers: DiscordInteractions,
        endpoint: bool,
        gateway: DiscordGateway | None = None,
    ) -> None:
        self._rest = rest
        self._application_id = application_id
        self._answers = answers
        # Mounted on the HTTP port when there is a public key to check requests with.
        self.interactions = answers if endpoint else None
        self._gateway = gateway

    async def run(self, stop: asyncio.Event) -> None:
        """Register the command (with an application id), then serve until `stop`."""
        try:
            if self._application_id is not None:
                await register_commands(self._rest, self._application_id)
            if self._gateway is not None:
                await self._gateway.run(stop)
            await stop.wait()
        finally:
            await self._answers.close()


class DiscordGateway:
    """`/gex` over the Gateway, for a bot with no public URL: discord.py's Client holds the
    websocket (heartbeats, resume, reconnects), on the leader only, as Telegram's polling is.

    Interactions arrive as events and are answered by the same `respond` as the endpoint,
    posted to `/interactions/{id}/{token}/callback`.
    """

    def __init__(
        self,
        interactions: DiscordInteractions,
        rest: DiscordRest,
        token: str,
        *,
        leader: Callable[[], bool],
    ) -> None:
        self._interactions = interactions
        self._rest = rest
        self._token = token
        self._leader = leader
        self.refused = False  # the token was refused: no further attempt until a restart

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the Gateway while leader, until `stop`; a refused token ends the attempts."""
        failures = 0
        while not stop.is_set():
            if not self._leader():
                await sleep_or_stop(stop, LEADER_CHECK)
                continue
            outcome = await self._hold(stop)
            if outcome is GatewayEnd.REFUSED:
                self.refused = True
                await stop.wait()
                return
            failures = failures + 1 if outcome is GatewayEnd.FAILED else 0
            await sleep_or_stop(stop, min(60.0, 2.0**failures) if failures else 0.0)

    async def _hold(self, stop: asyncio.Event) -> GatewayEnd:
        try:
            data = await self._rest.request(Route("GET", "/gateway/bot"), "discord gateway")
        except DeliveryError as exc:
            log.error("Discord Gateway unavailable (%s)", exc)
            return GatewayEnd.REFUSED if exc.permanent else GatewayEnd.FAILED
        # discord.py connects to a fixed URL; Discord says to ask /gateway/bot for it.
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(str(data["url"]))
        # Interactions need no intent; `guilds` (not privileged) keeps discord.py's state sound.
        VoiceClient.warn_dave = False  # no voice here: its missing codec is no news
        client = discord.Client(intents=discord.Intents(guilds=True))

        @client.event
        async def on_interaction(interaction: discord.Interaction) -> None:
            await self._on_interaction(interaction)

        @client.event
        async def on_ready() -> None:
            log.info("Discord Gateway connected")

        task = asyncio.create_task(client.start(self._token))
        try:
            while not stop.is_set() and self._leader() and not task.done():
                await sleep_or_stop(stop, LEADER_CHECK)
        finally:
            await client.close()
        try:
            await task
        except discord.LoginFailure:
            log.error("Discord Gateway: the bot token was refused (HTTP 401)")
            return GatewayEnd.REFUSED
        except Exception as exc:  # noqa: BLE001 - besides its own errors, discord.py's event
            # parsers raise whatever a malformed event provokes; the bot must outlive them.
            log.warning("Discord Gateway connection ended (%s); reconnecting", type(exc).__name__)
            return GatewayEnd.FAILED
        return GatewayEnd.LEFT

    async def _on_interaction(self, interaction: discord.Interaction) -> None:
        user = getattr(interaction.user, "id", None)  # absent from a malformed event
        if user is None:
            log.warning("ignored a Discord interaction without a user")
            return
        if interaction.type is discord.InteractionType.component:
            await self._on_press(interaction, str(user))
            return
        inv = read_invocation(
            {
                "id": str(interaction.id),
                "token": interaction.token,
                "application_id": str(interaction.application_id),
                "channel_id": str(interaction.channel_id or ""),
                "user": {"id": str(user)},
                "data": interaction.data or {},
            }
        )
        if inv is None:
            return
        await self._callback(inv.id, inv.token, *await self._interactions.respond(inv))

    async def _callback(
        self,
        interaction_id: str,
        token: str,
        answer: dict[str, Any],
        after: Coroutine[Any, Any, None] | None,
    ) -> None:
        """Post the interaction's answer over REST (the Gateway's way), then start what
        follows it; nothing follows an answer Discord did not take."""
        route = Route(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            interaction_id=interaction_id,
            interaction_token=token,
        )
        try:
            await self._rest.request(route, "discord reply", json=answer)
        except DeliveryError as exc:
            log.warning("Discord reply failed (%s)", exc)
            if after is not None:
                after.close()
            return
        if after is not None:
            self._interactions.background.start(after)

    async def _on_press(self, interaction: discord.Interaction, user: str) -> None:
        """A button or menu of an alert, over the Gateway: answered like the endpoint's."""
        message = interaction.message
        press = read_press(
            {
                "id": str(interaction.id),
                "token": interaction.token,
                "application_id": str(interaction.application_id),
                "channel_id": str(interaction.channel_id or ""),
                "user": {"id": user, "username": getattr(interaction.user, "name", user)},
                "data": interaction.data or {},
                "message": {
                    "id": str(message.id),
                    "embeds": [e.to_dict() for e in message.embeds],
                    "components": [c.to_dict() for c in message.components],
                }
                if message is not None
                else {},
            }
        )
        if press is not None:
            await self._callback(press.id, press.token, *await self._interactions.press(press))


class GatewayEnd(StrEnum):
    """Why a Gateway session ended."""

    LEFT = "left"  # stopped, or no longer the leader
    FAILED = "failed"  # the connection broke: try again, backing off
    REFUSED = "refused"  # the token was refused: trying again cannot help


LEADER_CHECK = 0.5  # seconds between looks at leadership and the stop signal
