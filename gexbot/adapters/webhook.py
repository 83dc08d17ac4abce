"""Webhook delivery: one signed JSON POST per event, over httpx.

Every error is told without the URL or the secret (either can hold a token): by the webhook's
name and the variable that configures it. Redirects are followed only when they keep the
method and the origin (307/308 to the same scheme, host and port); any other is refused,
so a body and its signature never reach another host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from gexbot.adapters.notify import DeliveryError
from gexbot.core.language.model import webhook_env, webhook_key
from gexbot.core.market.backoff import parse_retry_after
from gexbot.core.present.render import Rendered
from gexbot.core.present.webhook import delivery_id, webhook_body

log = logging.getLogger(__name__)

RETRIED = frozenset({408, 425, 429})  # and every 5xx
MAX_REDIRECTS = 3
USER_AGENT = "gexbot-webhook/1"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where one webhook name delivers (secrets kept in memory only)."""

    url: str
    secret: bytes | None
    timeout: float


def sign(secret: bytes, body: bytes, *, t: int) -> str:
    """`X-Gexbot-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class WebhookNotifier:
    """POSTs each event to its webhook; a slow receiver holds up only its own channel."""

    platform = "webhook"
    groups = False  # one body per event: receivers key on `id`

    def __init__(
        self,
        http: httpx.AsyncClient,
        targets: Mapping[str, WebhookTarget],
        *,
        wall_clock: Callable[[], float],
        problems: Mapping[str, str] | None = None,
    ) -> None:
        self._http = http
        self._targets = {webhook_key(k): v for k, v in targets.items()}
        self._problems = dict(problems or {})  # NAME → why it cannot deliver (variable named)
        self._clock = wall_clock

    async def send_image(self, target: str, png: bytes, title: str) -> None:
        """Charts are not sent to webhooks: the body says whether the rule asked for one."""

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def send(
        self,
        target: str,
        items: Sequence[Rendered],
        *,
        reply_to: str | None = None,  # noqa: ARG002 - one event a body; threads are the receiver's
        buttons: str | None = None,  # noqa: ARG002 - a receiver acts through its own UI
    ) -> str | None:
        """POST the event of each item (the dispatcher hands one at a time)."""
        last = None
        for item in items:
            last = await self._post(target, item)
        return last

    async def _post(self, name: str, item: Rendered) -> str | None:
        key = webhook_key(name)
        target = self._targets.get(key)
        if target is None:
            why = self._problems.get(key) or f"{webhook_env(name, 'url')} is not set"
            raise DeliveryError(f"webhook {name}: {why}", permanent=True)
        event = item.event
        if event is None:  # only rendered events reach notifiers; a bug otherwise
            raise DeliveryError(f"webhook {name}: nothing to send", permanent=True)
        id_ = delivery_id(event.key, event.seq, f"webhook:{key}")
        body = json.dumps(
            webhook_body(event, item, id_=id_), separators=(",", ":"), ensure_ascii=False
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": id_,
            "User-Agent": USER_AGENT,
        }
        if target.secret is not None:
            headers["X-Gexbot-Signature"] = sign(target.secret, body, t=int(self._clock()))
        response = await self._request(name, target, body, headers)
        status = response.status_code
        if 200 <= status < 300:
            return response.headers.get("X-Request-ID") or id_
        if status in RETRIED or status >= 500:
            now = datetime.fromtimestamp(self._clock(), tz=UTC)
            wait = parse_retry_after(response.headers.get("Retry-After"), now=now)
            told = f", retry after {wait:g}s as told" if wait is not None else ""
            raise DeliveryError(f"webhook {name}: HTTP {status}{told}", retry_after=wait)
        raise DeliveryError(f"webhook {name}: HTTP {status} (not retried)", permanent=True)

    async def _request(
        self, name: str, target: WebhookTarget, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        url = httpx.URL(target.url)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await self._http.post(
                    url, content=body, headers=headers, timeout=target.timeout
                )
            except httpx.TimeoutException:
                raise DeliveryError(
                    f"webhook {name}: no answer within {target.timeout:g}s"
                ) from None
            except httpx.HTTPError as exc:  # connection refused, reset, TLS…: all retried
                raise DeliveryError(
                    f"webhook {name}: request failed ({type(exc).__name__})"
                ) from None
            if not response.is_redirect:
                return response
            location = response.headers.get("Location", "")
            next_url = url.join(location)
            same_origin = (next_url.scheme, next_url.host, next_url.port) == (
                url.scheme,
                url.host,
                url.port,
            )
            if response.status_code not in (307, 308) or not same_origin:
                raise DeliveryError(
                    f"webhook {name}: redirected (HTTP {response.status_code}) elsewhere; "
                    f"not followed: point {webhook_env(name, 'url')} at the final address",
                    permanent=True,
                )
            url = next_url
        raise DeliveryError(f"webhook {name}: too many redirects", permanent=True)
