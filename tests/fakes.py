"""Programmable fakes of the Slack Web API and the Telegram Bot API (aiohttp, 127.0.0.1:0).

They record what they receive, answer like the real services (including their error bodies),
can be scripted per destination, and can enforce the platforms' published rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web


class _Server:
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class SlackPost:
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    ts: str
    at: float
    thread_ts: str | None = None  # a reply in this message's thread
    reply_broadcast: bool | None = None


class FakeSlack(_Server):
    """`chat.postMessage` and `auth.test`; per-channel scripts; optional 1/s/channel limit."""

    def __init__(self, token: str = "xoxb-test-token", *, enforce_limits: bool = False) -> None:
        super().__init__()
        self.token = token
        self.enforce = enforce_limits
        self.posts: list[SlackPost] = []
        self.script: dict[str, deque[Any]] = defaultdict(deque)  # channel → responses to play
        self.rejected_429 = 0
        self._last: dict[str, float] = {}
        self.app_token = "xapp-test-app-token"
        self.acks: list[dict[str, Any]] = []  # what the client sent back over the socket
        self.pending_files: dict[str, dict[str, Any]] = {}
        self.uploads: list[tuple[str, str, bytes]] = []  # (channel id, title, bytes)
        self.updates: list[dict[str, Any]] = []  # chat.update bodies
        self.ephemerals: list[dict[str, Any]] = []  # chat.postEphemeral bodies
        self._socket: web.WebSocketResponse | None = None
        self.sockets: list[web.WebSocketResponse] = []  # every open Socket Mode connection
        self._connected = asyncio.Event()
        self._acked = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", self._post)
        app.router.add_post("/api/chat.update", self._update)
        app.router.add_post("/api/chat.postEphemeral", self._ephemeral)
        app.router.add_post("/api/auth.test", self._auth_test)
        app.router.add_post("/api/apps.connections.open", self._connections_open)
        app.router.add_post("/api/files.getUploadURLExternal", self._upload_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/api/files.completeUploadExternal", self._complete_upload)
        app.router.add_get("/link", self._link)
        return app

    async def _upload_url(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not self._authorized(request):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        file_id = f"F{len(self.pending_files):08d}"
        self.pending_files[file_id] = {"filename": body.get("filename"), "data": b""}
        return web.json_response(
            {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        )

    async def _upload(self, request: web.Request) -> web.Response:
        self.pending_files[request.match_info["file_id"]]["data"] = await request.read()
        return web.Response(text="OK - uploaded")

    async def _complete_upload(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        files = body.get("files")
        files = json.loads(files) if isinstance(files, str) else files or []
        channel = str(body.get("channel_id", ""))
        for f in files:
            data = self.pending_files.pop(f["id"])["data"]
            self.uploads.append((channel, str(f.get("title", "")), data))
        return web.json_response({"ok": True, "files": [{"id": f["id"]} for f in files]})

    async def _connections_open(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.app_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({"ok": True, "url": self.url.replace("http", "ws") + "/link"})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._socket = ws
        self.sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": len(self.sockets)})
        self._connected.set()
        try:
            async for msg in ws:
                if msg.type.name == "TEXT":
                    self.acks.append(json.loads(msg.data))
                    self._acked.set()
        finally:
            self.sockets.remove(ws)
        return ws

    async def broadcast(self, kind: str, payload: dict[str, Any], envelope_id: str) -> int:
        """Send one envelope to every open connection (Slack's worst case: a redelivery to
        another replica); returns how many connections it went to."""
        sent = 0
        for ws in list(self.sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json(
                    {
                        "envelope_id": envelope_id,
                        "type": kind,
                        "payload": payload,
                        "accepts_response_payload": True,
                    }
                )
                sent += 1
        return sent

    def answers(self, envelope_id: str) -> list[dict[str, Any]]:
        """Acknowledgements of `envelope_id` that carried a reply."""
        return [a for a in self.acks if a.get("envelope_id") == envelope_id and a.get("payload")]

    async def envelope(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one Socket Mode envelope and wait for its acknowledgement."""
        await asyncio.wait_for(self._connected.wait(), timeout=10)
        assert self._socket is not None
        envelope_id = f"env-{len(self.acks)}"
        self._acked.clear()
        await self._socket.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": True,
            }
        )
        while not any(a.get("envelope_id") == envelope_id for a in self.acks):
            self._acked.clear()
            await asyncio.wait_for(self._acked.wait(), timeout=10)
        return next(a for a in self.acks if a.get("envelope_id") == envelope_id)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    async def _body(self, request: web.Request) -> dict[str, Any]:
        # slack-sdk sends some methods' arguments as query parameters, others in the body.
        data: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            data.update(await request.json())
            return data
        form = await request.post()
        data.update({k: (json.loads(str(v)) if k == "blocks" else str(v)) for k, v in form.items()})
        return data

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _auth_test(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response(
            {"ok": True, "user_id": "U0BOT", "bot_id": "B0BOT", "team_id": "T0", "user": "gexbot"}
        )

    async def _update(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not self._authorized(request):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        self.updates.append(body)
        return web.json_response({"ok": True, "channel": body.get("channel"), "ts": body.get("ts")})

    async def _ephemeral(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not self._authorized(request):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        self.ephemerals.append(body)
        return web.json_response({"ok": True, "message_ts": "1.000001"})

    async def _post(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not self._authorized(request):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        channel = str(body.get("channel", ""))
        now = time.monotonic()
        if self.enforce and now - self._last.get(channel, -10.0) < 0.95:
            self.rejected_429 += 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        scripted = self.script[channel].popleft() if self.script[channel] else None
        if isinstance(scripted, str):
            return web.json_response({"ok": False, "error": scripted})
        if isinstance(scripted, tuple) and scripted[0] == 429:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(scripted[1])},
            )
        if isinstance(scripted, int):
            return web.Response(status=scripted, text="upstream trouble")
        self._last[channel] = now
        ts = f"{1700000000 + len(self.posts)}.{len(self.posts):06d}"
        broadcast = body.get("reply_broadcast")
        self.posts.append(
            SlackPost(
                channel,
                str(body.get("text", "")),
                list(body.get("blocks") or []),
                ts,
                now,
                str(body["thread_ts"]) if body.get("thread_ts") else None,
                None if broadcast is None else str(broadcast).lower() in ("true", "1"),
            )
        )
        return web.json_response({"ok": True, "channel": channel, "ts": ts})


@dataclass
class TelegramMessage:
    chat_id: str
    text: str
    parse_mode: str | None
    message_id: int
    at: float
    reply_to: int | None = None  # reply_parameters.message_id
    without_reply: bool | None = None  # reply_parameters.allow_sending_without_reply
    keyboard: list[list[dict[str, Any]]] | None = None  # reply_markup.inline_keyboard

    def button(self, label: str) -> str:
        """The callback data of the button captioned `label`."""
        for row in self.keyboard or []:
            for key in row:
                if key["text"] == label:
                    return str(key["callback_data"])
        raise AssertionError(f"no button {label!r} on message {self.message_id}")


@dataclass
class FakeTelegram(_Server):
    """`getMe`, `sendMessage` (and friends later); per-chat scripts; optional flood limits."""

    token: str = "123456:TEST-token"
    enforce_limits: bool = False
    messages: list[TelegramMessage] = field(default_factory=list)
    script: dict[str, deque[Any]] = field(default_factory=lambda: defaultdict(deque))
    calls: list[str] = field(default_factory=list)
    rejected_429: int = 0
    updates: list[dict[str, Any]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # the offset of every getUpdates call
    commands: list[list[dict[str, Any]]] = field(default_factory=list)  # setMyCommands payloads
    photos: list[tuple[str, bytes]] = field(default_factory=list)  # (chat id, PNG bytes)
    conflicts: int = 0  # answer this many getUpdates calls with 409 Conflict
    photo_gate: asyncio.Event | None = None  # when given, sendPhoto answers once it is set
    overlaps: int = 0  # getUpdates calls that arrived while another was still open
    answers: list[dict[str, str]] = field(default_factory=list)  # answerCallbackQuery forms
    photo_replies: list[int | None] = field(default_factory=list)  # each photo's reply target
    edits: list[dict[str, str]] = field(default_factory=list)  # editMessageText forms
    _open_polls: int = 0
    _recent: deque[float] = field(default_factory=deque)
    _last_chat: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _Server.__init__(self)
        self._arrived = asyncio.Event()

    def push_command(self, text: str, *, user: int, chat: int | None = None) -> int:
        """Queue a message update (a bot command when it starts with /); its update_id."""
        update_id = 1000 + len(self.updates)
        entities = (
            [{"type": "bot_command", "offset": 0, "length": len(text.split(maxsplit=1)[0])}]
            if text.startswith("/")
            else []
        )
        chat_id = chat if chat is not None else user
        self.updates.append(
            {
                "update_id": update_id,
                "message": {
                    "message_id": update_id,
                    "date": int(time.time()),
                    "text": text,
                    "entities": entities,
                    "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                    "from": {"id": user, "is_bot": False, "first_name": f"u{user}"},
                },
            }
        )
        self._arrived.set()
        return update_id

    def push_press(
        self, data: str, *, user: int, message: TelegramMessage, username: str | None = None
    ) -> int:
        """Queue a button press on `message` (a callback_query update); its update_id."""
        update_id = 1000 + len(self.updates)
        sender: dict[str, Any] = {"id": user, "is_bot": False, "first_name": f"u{user}"}
        if username:
            sender["username"] = username
        chat_id = int(message.chat_id)
        self.updates.append(
            {
                "update_id": update_id,
                "callback_query": {
                    "id": f"cq{update_id}",
                    "from": sender,
                    "chat_instance": "ci",
                    "data": data,
                    "message": {
                        "message_id": message.message_id,
                        "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                        "text": re.sub(r"<[^>]+>", "", message.text),
                        "reply_markup": {"inline_keyboard": message.keyboard or []},
                    },
                },
            }
        )
        self._arrived.set()
        return update_id

    def replies_to(self, chat: int) -> list[str]:
        return [m.text for m in self.messages if m.chat_id == str(chat)]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._method)
        return app

    @property
    def api_url(self) -> str:
        return f"{self.url}/bot"

    @staticmethod
    def _error(code: int, description: str, **parameters: Any) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=code)

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        form = await request.post()
        if method == "sendPhoto":
            if self.photo_gate is not None:
                await self.photo_gate.wait()  # an upload still on the wire
            photo = form.get("photo")
            body = photo.file.read() if isinstance(photo, web.FileField) else b""
            self.photos.append((str(form.get("chat_id", "")), body))
            replying = form.get("reply_parameters")
            self.photo_replies.append(
                json.loads(str(replying)).get("message_id") if replying else None
            )
            return web.json_response(
                {
                    "ok": True,
                    "result": {
                        "message_id": 9000 + len(self.photos),
                        "date": int(time.time()),
                        "chat": {"id": int(str(form.get("chat_id", "0"))), "type": "private"},
                        "photo": [
                            {"file_id": "f", "file_unique_id": "u", "width": 1200, "height": 675}
                        ],
                    },
                }
            )
        data = {k: str(v) for k, v in form.items()}
        if method == "getMe":
            return web.json_response(
                {
                    "ok": True,
                    "result": {
                        "id": 123456,
                        "is_bot": True,
                        "first_name": "gexbot",
                        "username": "gexbot_bot",
                    },
                }
            )
        if method == "sendMessage":
            return self._send_message(data)
        if method == "answerCallbackQuery":
            self.answers.append(data)
            return web.json_response({"ok": True, "result": True})
        if method == "editMessageText":
            self.edits.append(data)
            return web.json_response(
                {
                    "ok": True,
                    "result": {
                        "message_id": int(data.get("message_id", "0")),
                        "date": int(time.time()),
                        "chat": {"id": int(data.get("chat_id", "0")), "type": "private"},
                        "text": data.get("text", ""),
                    },
                }
            )
        if method == "getUpdates":
            return await self._get_updates(data)
        if method == "setMyCommands":
            self.commands.append(json.loads(data.get("commands", "[]")))
            return web.json_response({"ok": True, "result": True})
        if method == "deleteWebhook":
            return web.json_response({"ok": True, "result": True})
        return self._error(404, "Not Found")

    async def _get_updates(self, data: dict[str, str]) -> web.Response:
        if self.conflicts:
            self.conflicts -= 1
            return self._error(
                409,
                "Conflict: terminated by other getUpdates request; make "
                "sure that only one bot instance is running",
            )
        offset = int(data.get("offset", "0") or 0)
        self.offsets.append(offset)
        if self._open_polls:
            self.overlaps += 1
        self._open_polls += 1
        try:
            pending = [u for u in self.updates if u["update_id"] >= offset]
            if not pending:  # long poll, capped short so tests stay fast
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), timeout=0.3)
                pending = [u for u in self.updates if u["update_id"] >= offset]
        finally:
            self._open_polls -= 1
        return web.json_response({"ok": True, "result": pending})

    def _send_message(self, data: dict[str, str]) -> web.Response:
        chat = data.get("chat_id", "")
        now = time.monotonic()
        if self.enforce_limits:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            per_chat = 3.0 if chat.startswith("-") else 1.0
            if len(self._recent) >= 30 or now - self._last_chat.get(chat, -10.0) < per_chat * 0.95:
                self.rejected_429 += 1
                return self._error(429, "Too Many Requests: retry after 1", retry_after=1)
        scripted = self.script[chat].popleft() if self.script[chat] else None
        if scripted == "blocked":
            return self._error(403, "Forbidden: bot was blocked by the user")
        if scripted == "not_found":
            return self._error(400, "Bad Request: chat not found")
        if isinstance(scripted, tuple) and scripted[0] == "migrate":
            return self._error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=scripted[1],
            )
        if isinstance(scripted, tuple) and scripted[0] == 429:
            return self._error(
                429, f"Too Many Requests: retry after {scripted[1]}", retry_after=scripted[1]
            )
        if isinstance(scripted, int):
            return self._error(scripted, "Internal Server Error")
        self._recent.append(now)
        self._last_chat[chat] = now
        reply = json.loads(data["reply_parameters"]) if data.get("reply_parameters") else {}
        markup = json.loads(data["reply_markup"]) if data.get("reply_markup") else {}
        msg = TelegramMessage(
            chat,
            data.get("text", ""),
            data.get("parse_mode"),
            len(self.messages) + 1,
            now,
            reply.get("message_id"),
            reply.get("allow_sending_without_reply"),
            markup.get("inline_keyboard"),
        )
        self.messages.append(msg)
        kind = "supergroup" if chat.startswith("-") else "private"
        return web.json_response(
            {
                "ok": True,
                "result": {
                    "message_id": msg.message_id,
                    "date": int(time.time()),
                    "chat": {"id": int(chat), "type": kind},
                    "text": msg.text,
                },
            }
        )


class TcpProxy:
    """A TCP relay to `target`, which can cut the network: `cut()` stops carrying bytes both
    ways (nothing is closed, as when a cable is pulled; TCP on both sides keeps waiting),
    `sever()` closes every connection and refuses new ones (a database restarting), and
    `restore()` carries bytes and accepts connections again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._open = asyncio.Event()
        self._open.set()
        self._severed = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def sever(self) -> None:
        self._severed = True
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def cut(self) -> None:
        self._open.clear()

    def restore(self) -> None:
        self._severed = False
        self._open.set()

    async def stop(self) -> None:
        self._open.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._open.wait()
        if self._severed:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._open.wait()
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()


@dataclass
class WebhookCall:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.monotonic() on arrival


@dataclass
class FakeReceiver(_Server):
    """A webhook receiver: records every POST (raw body, headers) and answers from a script.

    `script[path]` holds answers to play in order, each a status or (status, headers, delay s);
    once empty, 204. Paths let one receiver stand in for several webhooks.
    """

    calls: list[WebhookCall] = field(default_factory=list)
    script: dict[str, deque[Any]] = field(default_factory=lambda: defaultdict(deque))

    def __post_init__(self) -> None:
        _Server.__init__(self)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._post)
        return app

    def delivered(self, path: str = "") -> list[WebhookCall]:
        """Calls to `path` (all paths when empty) answered 2xx."""
        return [c for c in self.calls if (not path or c.path == path) and c.status < 300]

    async def _post(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body = await request.read()
        queue = self.script[path]
        answer = queue.popleft() if queue else 204
        status, headers, delay = (
            (answer, {}, 0.0) if isinstance(answer, int) else (*answer, 0.0)[:3]
        )
        if delay:
            await asyncio.sleep(delay)
        self.calls.append(WebhookCall(path, dict(request.headers), body, status, time.monotonic()))
        if 300 <= status < 400:
            return web.Response(status=status, headers=headers)
        return web.json_response({"status": status}, status=status, headers=headers)


@dataclass
class DiscordPost:
    path: str  # after the API base: /channels/ID/messages, /webhooks/APP/TOKEN/messages/@original
    method: str
    payload: dict[str, Any]  # the JSON body, or a multipart body's payload_json
    files: dict[str, bytes]  # multipart file parts by field name (files[0])
    status: int
    at: float  # time.monotonic() on arrival


@dataclass
class FakeDiscord(_Server):
    """Discord's REST API as gexbot uses it: `/users/@me`, channel messages (JSON or multipart),
    command registration, interaction replies and follow-ups; error bodies, rate-limit headers
    and 429s the way Discord sends them.

    `script[channel id or interaction token]` holds answers to play in order, each a status or
    (status, body, headers); once empty, success.
    """

    token: str = "discord-bot-token"
    application_id: str = "111111111111111111"
    posts: list[DiscordPost] = field(default_factory=list)
    commands: list[list[dict[str, Any]]] = field(default_factory=list)  # each PUT's body
    script: dict[str, deque[Any]] = field(default_factory=lambda: defaultdict(deque))
    logins: int = 0
    requests: int = 0  # every request, authorized or not
    identified: int = 0  # Gateway sessions the token opened
    gateways: list[web.WebSocketResponse] = field(default_factory=list)  # open, identified
    _seq: int = 0
    _ids: int = 1_300_000_000_000_000_000

    def __post_init__(self) -> None:
        _Server.__init__(self)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v10"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self._me)
        app.router.add_post("/api/v10/channels/{target}/messages", self._message)
        app.router.add_put("/api/v10/applications/{app}/commands", self._commands)
        app.router.add_patch("/api/v10/webhooks/{app}/{target}/messages/@original", self._message)
        app.router.add_post("/api/v10/webhooks/{app}/{target}", self._message)
        app.router.add_post("/api/v10/interactions/{iid}/{target}/callback", self._message)
        app.router.add_get("/api/v10/gateway/bot", self._gateway_bot)
        app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        app.router.add_get("/gateway", self._gateway)
        return app

    # -- the Gateway: HELLO, IDENTIFY checked, READY, heartbeats, then pushed events ----------

    async def _application(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _discord_json({"message": "401: Unauthorized", "code": 0}, status=401)
        owner = {
            "id": "666666666666666666",
            "username": "desk",
            "discriminator": "0",
            "avatar": None,
            "global_name": None,
        }
        return _discord_json(
            {
                "id": self.application_id,
                "name": "gexbot",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": "00" * 32,
                "owner": owner,
                "flags": 0,
            }
        )

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _discord_json({"message": "401: Unauthorized", "code": 0}, status=401)
        return _discord_json(
            {
                "url": self.url.replace("http://", "ws://") + "/gateway",
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                if frame.get("op") == 1:  # heartbeat
                    await ws.send_json({"op": 11})
                elif frame.get("op") == 2:  # identify
                    if frame["d"].get("token") != self.token:
                        await ws.close(code=4004, message=b"Authentication failed.")
                        break
                    self.identified += 1
                    self.gateways.append(ws)
                    self._seq += 1
                    await ws.send_json(
                        {
                            "op": 0,
                            "t": "READY",
                            "s": self._seq,
                            "d": {
                                "v": 10,
                                "user": {
                                    "id": "222222222222222222",
                                    "username": "gexbot",
                                    "discriminator": "0",
                                    "bot": True,
                                    "avatar": None,
                                    "global_name": None,
                                },
                                "guilds": [],
                                "private_channels": [],
                                "relationships": [],
                                "session_id": f"session-{self.identified}",
                                "resume_gateway_url": self.url.replace("http://", "ws://")
                                + "/gateway",
                                "application": {"id": self.application_id, "flags": 0},
                            },
                        }
                    )
        finally:
            if ws in self.gateways:
                self.gateways.remove(ws)
        return ws

    async def push_interaction(self, payload: dict[str, Any]) -> int:
        """Dispatch INTERACTION_CREATE on every identified Gateway session; how many."""
        event = {"version": 1, "attachment_size_limit": 26214400, **payload}
        for ws in list(self.gateways):
            self._seq += 1
            await ws.send_json({"op": 0, "t": "INTERACTION_CREATE", "s": self._seq, "d": event})
        return len(self.gateways)

    def to(self, target: str) -> list[DiscordPost]:
        """Messages accepted for a channel or an interaction token."""
        return [p for p in self.posts if f"/{target}/" in f"{p.path}/" and p.status < 300]

    def _next_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    @staticmethod
    def _headers(bucket: str) -> dict[str, str]:
        # Sent on every answer, as Discord does; discord.py keys its buckets on them.
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset-After": "1.0",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Bucket": bucket,
            "Via": "1.1 google",  # discord.py reads a 429 without it as a Cloudflare ban
        }

    def _authorized(self, request: web.Request) -> bool:
        self.requests += 1
        return request.headers.get("Authorization") == f"Bot {self.token}"

    @staticmethod
    def _error(status: int, code: int, message: str, headers: dict[str, str]) -> web.Response:
        return _discord_json({"message": message, "code": code}, status=status, headers=headers)

    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized", {"Via": "1.1 google"})
        self.logins += 1
        return _discord_json(
            {
                "id": "222222222222222222",
                "username": "gexbot",
                "discriminator": "0",
                "bot": True,
                "avatar": None,
                "global_name": None,
            }
        )

    async def _commands(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized", {"Via": "1.1 google"})
        body = await request.json()
        self.commands.append(body)
        return _discord_json([{**c, "id": self._next_id()} for c in body])

    async def _message(self, request: web.Request) -> web.Response:
        target = request.match_info["target"]
        headers = self._headers(f"bucket-{request.method}-{request.path.split('/')[3]}")
        # Interaction replies are authorized by their token, not the bot's.
        is_webhook = request.path.startswith(("/api/v10/webhooks/", "/api/v10/interactions/"))
        if not is_webhook and not self._authorized(request):
            return self._error(401, 0, "401: Unauthorized", headers)
        payload: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read()
                if part.name == "payload_json":
                    payload = json.loads(data)
                elif part.name:
                    files[part.name] = bytes(data)
        else:
            payload = await request.json()
        queue = self.script[target]
        answer = queue.popleft() if queue else 200
        status, body, extra = (answer, None, {}) if isinstance(answer, int) else answer
        path = request.path.removeprefix("/api/v10")
        self.posts.append(
            DiscordPost(path, request.method, payload, files, status, time.monotonic())
        )
        if status == 429:
            retry = float((body or {}).get("retry_after", 1.0))
            body = {
                "message": "You are being rate limited.",
                "retry_after": retry,
                "global": False,
                **(body or {}),
            }
            scope = "global" if body["global"] else extra.get("X-RateLimit-Scope", "user")
            headers = {
                **headers,
                "Retry-After": str(max(1, round(retry))),
                "X-RateLimit-Scope": scope,
                "X-RateLimit-Remaining": "0",
            }
            if scope == "global":
                headers["X-RateLimit-Global"] = "true"
        if status >= 300:
            return _discord_json(
                body or {"message": "error", "code": 0}, status=status, headers={**headers, **extra}
            )
        return _discord_json(
            {"id": self._next_id(), "channel_id": target, "type": 0, **payload},
            headers={**headers, **extra},
        )


def _discord_json(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # Exactly `application/json`, no charset, as Discord sends it: discord.py parses a body
    # as JSON only then.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )
