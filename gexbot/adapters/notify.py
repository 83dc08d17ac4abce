"""The notifier interface and the error every notifier translates its platform's errors into."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gexbot.core.present.render import Rendered


class DeliveryError(Exception):
    """Sending failed. `permanent`: retrying cannot help; `unreachable`: the destination itself
    is gone or refuses the bot (blocked, removed, archived). The message never holds a secret."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent or unreachable
        self.retry_after = retry_after
        self.unreachable = unreachable


class Notifier(Protocol):
    """Sends rendered alerts to one platform."""

    platform: str
    # True: the alerts of one cycle for one destination go out as one message. False: one
    # request per alert (webhooks, whose receivers key on one event per body).
    groups: bool

    async def send(
        self,
        target: str,
        items: Sequence[Rendered],
        *,
        reply_to: str | None = None,
        buttons: str | None = None,
    ) -> str | None:
        """Send one message carrying `items` to `target`; the provider's message id.
        `reply_to`: the id of the message whose thread it belongs in (platforms without
        threads ignore it; a deleted original makes it a message of its own). `buttons`: the
        token of the alert's buttons (one alert a message), on platforms that show them."""
        ...

    async def send_image(self, target: str, png: bytes, title: str) -> None:
        """Send a picture after a message (best effort: callers log, never retry)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
