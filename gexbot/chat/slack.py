"""Slack commands over Socket Mode: `/gex levels btc` and `@gexbot levels btc`.

Socket Mode (GEXBOT_SLACK_APP_TOKEN, `xapp-…`) needs no public URL. Each envelope is
acknowledged with the reply itself for slash commands (Slack shows it to the person who typed
it); mentions are acknowledged at once and answered in the thread. Every replica may hold a
connection; a command (by its trigger or event id) is answered by the first replica that
records it in the database, and only acknowledged by the others. With
GEXBOT_SLACK_ALLOWED_USERS set, anyone else gets a short refusal (privately for a slash
command, at most once an hour in a channel) and no data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gexbot.adapters.notify import DeliveryError
from gexbot.adapters.slack import SlackNotifier
from gexbot.chat.buttons import ButtonPresses
from gexbot.chat.service import REFUSAL, ChatService, Refusals, Reply
from gexbot.core.present.render import slack_escape
from gexbot.loops.waits import Background
from gexbot.store.ops import claim_command

log = logging.getLogger(__name__)


def _mrkdwn(reply: Reply) -> str:
    text = slack_escape(reply.text)
    return f"```{text}```" if reply.monospace else text


class SlackCommands:
    """Answers `/gex …` slash commands and app mentions."""

    def __init__(
        self,
        app_token: str | None,
        web: AsyncWebClient,
        service: ChatService,
        *,
        files: SlackNotifier,
        engine: Engine,
        instance: str,
        clock: Callable[[], datetime],
        allowed_users: Sequence[str] = (),
        monotonic: Callable[[], float],
        presses: ButtonPresses | None = None,
    ) -> None:
        self._presses = presses
        self._allowed = frozenset(allowed_users)  # empty: every member of the workspace
        self._refusals = Refusals(monotonic)
        self._app_token = app_token
        self._web = web
        self._files = files  # the alerts' notifier: the same upload and channel lookup
        # Answers to events and charts run after the acknowledgement, which Slack wants
        # within 3 s, and never hold up the next command.
        self.background = Background(log, "Slack command handling")
        self._service = service
        self._engine = engine
        self._instance = instance
        self._clock = clock

    def _allowed_user(self, user: str) -> bool:
        if not self._allowed or user in self._allowed:
            return True
        log.warning(
            "refused a command from Slack user %s (not in GEXBOT_SLACK_ALLOWED_USERS)", user
        )
        return False

    async def _first(self, key: str) -> bool:
        """Whether this replica is the one to answer command `key`."""

        def run() -> bool:
            with self._engine.begin() as conn:
                return claim_command(conn, key, by=self._instance, now=self._clock())

        try:
            return await asyncio.to_thread(run)
        except SQLAlchemyError:  # the database is down: answering twice beats not answering
            log.warning("could not record Slack command %s; answering anyway", key)
            return True

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, answer until `stop`, close (nothing without an app token: HTTP only)."""
        if self._app_token is None:
            return
        client = SocketModeClient(app_token=self._app_token, web_client=self._web)
        client.socket_mode_request_listeners.append(self._on_request)
        try:
            await client.connect()  # type: ignore[no-untyped-call]
        except (SlackApiError, SlackClientError, OSError) as exc:
            # Error text only: the SDK's message can quote the request.
            code = getattr(getattr(exc, "response", None), "data", {}) or {}
            log.error(
                "Slack Socket Mode did not connect (%s); check GEXBOT_SLACK_APP_TOKEN",
                code.get("error", type(exc).__name__)
                if isinstance(code, dict)
                else type(exc).__name__,
            )
            return
        log.info("Slack Socket Mode connected")
        try:
            await stop.wait()
        finally:
            await self.background.drain()
            await client.close()  # type: ignore[no-untyped-call]

    async def _upload_chart(self, channel: str, reply: Reply, thread_ts: str | None = None) -> None:
        png = await reply.chart() if reply.chart is not None else None
        if png is None:
            return
        try:
            await self._files.send_image(channel, png, "GEX levels", thread_ts=thread_ts)
        except DeliveryError as exc:  # the text reply went out already; the chart is extra
            log.warning("chart upload to %s failed (%s)", channel, exc)

    async def slash(
        self, p: Mapping[str, Any], fallback_id: str
    ) -> tuple[dict[str, Any], Reply] | None:
        """The ephemeral response to a slash command, and the reply (for `after_slash`); None
        when another replica (or an earlier delivery) already answered it."""
        if not await self._first(f"slack:cmd:{p.get('trigger_id') or fallback_id}"):
            return None
        user = str(p.get("user_id", ""))
        # A refusal here is ephemeral: only the person who typed it sees it.
        reply = (
            await self._service.answer(
                str(p.get("text", "")),
                platform="slack",
                chat_id=str(p.get("channel_id", "")),
                user=user,
            )
            if self._allowed_user(user)
            else Reply(REFUSAL)
        )
        return {"response_type": "ephemeral", "text": _mrkdwn(reply)}, reply

    async def after_slash(self, p: Mapping[str, Any], reply: Reply) -> None:
        """Once the response is acknowledged: the chart, as a file in the command's channel."""
        await self._upload_chart(str(p.get("channel_id", "")), reply)

    async def event(self, payload: Mapping[str, Any], fallback_id: str) -> None:
        """An Events API callback: answer an app mention in its thread, once."""
        event = payload.get("event") or {}
        if event.get("type") != "app_mention":
            return
        if not await self._first(f"slack:event:{payload.get('event_id') or fallback_id}"):
            return
        channel = str(event.get("channel", ""))
        user = str(event.get("user", ""))
        if self._allowed_user(user):
            reply = await self._service.answer(
                str(event.get("text", "")), platform="slack", chat_id=channel, user=user
            )
        elif self._refusals.due(user):  # in a channel: once an hour, not per mention
            reply = Reply(REFUSAL)
        else:
            return
        await self._web.chat_postMessage(
            channel=channel, text=_mrkdwn(reply), thread_ts=event.get("ts")
        )
        await self._upload_chart(channel, reply, thread_ts=event.get("ts"))

    async def interaction(self, payload: Mapping[str, Any]) -> None:
        """A button or menu of an alert (`block_actions`), after its acknowledgement: done once,
        the message then says what was done and by whom, a chart or the levels go in its
        thread, and the presser alone is told the outcome."""
        actions = payload.get("actions") or []
        if payload.get("type") != "block_actions" or not actions or self._presses is None:
            return
        action = actions[0] if isinstance(actions[0], Mapping) else {}
        data = action.get("value") or (action.get("selected_option") or {}).get("value") or ""
        user = payload.get("user") or {}
        channel = payload.get("channel") or {}
        message = payload.get("message") or {}
        user_id, channel_id = str(user.get("id", "")), str(channel.get("id", ""))
        key = f"slack:act:{action.get('action_ts') or payload.get('trigger_id')}:{user_id}"
        if not await self._first(key):
            return  # a redelivery, or another replica's connection: answered there
        name = str(channel.get("name") or "")
        outcome = await self._presses.press(
            str(data),
            platform="slack",
            chat_id=channel_id,
            user=user_id,
            who=f"@{user.get('username') or user.get('name') or user_id}",
            allowed=not self._allowed or user_id in self._allowed,
            aliases=(f"#{name}", name) if name else (),
        )
        ts = message.get("ts")
        try:
            await self._web.chat_postEphemeral(channel=channel_id, user=user_id, text=outcome.toast)
            if outcome.line is not None and ts:
                context = {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": slack_escape(outcome.line)}],
                }
                await self._web.chat_update(
                    channel=channel_id,
                    ts=str(ts),
                    text=str(message.get("text", "")),
                    blocks=[*(message.get("blocks") or []), context],
                )
            if outcome.reply is not None:
                await self._web.chat_postMessage(
                    channel=channel_id, text=_mrkdwn(outcome.reply), thread_ts=ts
                )
                await self._upload_chart(channel_id, outcome.reply, thread_ts=ts)
        except SlackApiError as exc:
            log.warning("answering a Slack button press failed (%s)", exc.response.get("error"))

    async def _on_request(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        try:
            if req.type == "slash_commands":
                answer = await self.slash(req.payload, req.envelope_id)
                await client.send_socket_mode_response(
                    SocketModeResponse(
                        envelope_id=req.envelope_id, payload=answer[0] if answer else None
                    )
                )
                if answer is not None:
                    self.background.start(self.after_slash(req.payload, answer[1]))
                return
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            if req.type == "events_api":
                self.background.start(self.event(req.payload, req.envelope_id))
            elif req.type == "interactive":  # acknowledged above, within Slack's 3 s
                self.background.start(self.interaction(req.payload))
        except Exception:
            log.exception("Slack command handling failed")
