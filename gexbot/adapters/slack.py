"""Slack delivery through slack-sdk's AsyncWebClient (`chat.postMessage`, Block Kit)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from gexbot.adapters.notify import DeliveryError
from gexbot.adapters.pacing import SLACK_PER_CHANNEL, Pacer
from gexbot.core.alerts.buttons import actions_for
from gexbot.core.present.render import Rendered, slack_buttons, slack_message

log = logging.getLogger(__name__)

#: Errors that no retry fixes (api.slack.com/methods/chat.postMessage#errors).
UNREACHABLE = frozenset({"channel_not_found", "not_in_channel", "is_archived"})  # this channel only
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "restricted_action",
        "ekm_access_denied",
        "invalid_blocks",
        "msg_too_long",
        "team_access_not_granted",
    }
)


#: Slack's answers to a `thread_ts` whose message is gone (it mostly posts to the channel).
_NO_THREAD = frozenset({"thread_not_found", "message_not_found"})


class SlackNotifier:
    """Posts to Slack channels, paced at about one message per second per channel."""

    platform = "slack"
    groups = True

    def __init__(self, client: AsyncWebClient, *, pacer: Pacer) -> None:
        self._client = client
        self._pacer = pacer

    async def send_image(
        self, target: str, png: bytes, title: str, *, thread_ts: str | None = None
    ) -> None:
        """`files_upload_v2` (getUploadURLExternal, upload, completeUploadExternal), in a
        thread when `thread_ts` is given."""
        channel = target.lstrip("#")
        if not channel.startswith(("C", "G", "D")) or not channel.isupper():
            # files_upload_v2 takes a conversation id; names must be resolved first.
            channel = await self._channel_id(channel)
        try:
            await self._client.files_upload_v2(
                channel=channel,
                content=png,
                filename="levels.png",
                title=title[:200],
                thread_ts=thread_ts,
            )
        except SlackApiError as exc:
            raise self._translate(exc, f"slack:{target}") from None
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"slack upload: {type(exc).__name__}") from None

    async def _channel_id(self, name: str) -> str:
        cursor = None
        while True:
            resp = await self._client.conversations_list(
                types="public_channel,private_channel", limit=1000, cursor=cursor
            )
            data = resp.data if isinstance(resp.data, dict) else {}
            for ch in data.get("channels", []):
                if ch.get("name") == name:
                    return str(ch["id"])
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                raise DeliveryError(f"slack: no channel named #{name} for the chart upload")

    async def close(self) -> None:
        """Close the client's HTTP session, if it owns one."""
        if self._client.session is not None and not self._client.session.closed:
            await self._client.session.close()

    async def send(
        self,
        target: str,
        items: Sequence[Rendered],
        *,
        reply_to: str | None = None,
        buttons: str | None = None,
    ) -> str | None:
        """Post one message; the message `ts` is the provider id. A follow-up goes in the
        original's thread (`thread_ts`, not broadcast to the channel)."""
        key = f"slack:{target}"
        await self._pacer.wait([(key, SLACK_PER_CHANNEL)])
        text, blocks = slack_message(items)
        event = items[0].event if len(items) == 1 else None
        if buttons is not None and event is not None:
            blocks = [*blocks, slack_buttons(buttons, actions_for(event.rule_id))]
        resp = await self._post(target, text, blocks, reply_to, key)
        ts = resp.data.get("ts") if isinstance(resp.data, dict) else None
        return str(ts) if ts is not None else None

    async def _post(
        self, target: str, text: str, blocks: list[dict[str, Any]], thread: str | None, key: str
    ) -> Any:
        """`chat.postMessage`, in `thread` when given; Slack's errors as DeliveryError."""
        try:
            return await self._client.chat_postMessage(
                channel=target,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                thread_ts=thread,
                reply_broadcast=False if thread else None,
            )
        except SlackApiError as exc:
            if thread and exc.response.get("error") in _NO_THREAD:
                # The original is gone: the follow-up stands alone rather than being lost.
                return await self._post(target, text, blocks, None, key)
            raise self._translate(exc, key) from None
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"slack: {type(exc).__name__}") from None

    def _translate(self, exc: SlackApiError, key: str) -> DeliveryError:
        # Build the message from the error code only: the SDK's text can quote the request.
        resp = exc.response
        data = getattr(resp, "data", None)
        code = str(data.get("error") or "unknown_error") if isinstance(data, dict) else "no_json"
        status = getattr(resp, "status_code", None)
        if status == 429 or code == "ratelimited":
            try:
                wait = float(resp.headers.get("Retry-After", "1")) if resp is not None else 1.0
            except ValueError:
                wait = 1.0
            self._pacer.push_back(key, wait)
            return DeliveryError(f"slack: rate limited ({code})", retry_after=wait)
        if code in PERMANENT:
            return DeliveryError(f"slack: {code}", permanent=True, unreachable=code in UNREACHABLE)
        return DeliveryError(f"slack: {code} (HTTP {status})")
