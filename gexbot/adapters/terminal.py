"""The terminal notifier (Rich): what `gexbot demo` shows, and handy in development.

Named `terminal` so that "console" means one thing, the web console; rule files may still
write the channel as `{console: true}`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from rich.console import Console
from rich.text import Text

from gexbot.core.language.model import Severity
from gexbot.core.present.render import Rendered

_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


class TerminalNotifier:
    """Prints alerts, one block each, with a local sequence number as the message id."""

    platform = "terminal"
    groups = True

    def __init__(self, console: Console | None, *, clock: Callable[[], datetime]) -> None:
        self._console = console or Console()
        self._clock = clock  # each line is stamped with the time it is printed
        self._count = 0

    async def send_image(self, target: str, png: bytes, title: str) -> None:  # noqa: ARG002 - one terminal
        """A terminal cannot show a picture: say so."""
        self._console.print(
            Text(f"          [chart: {title}, {len(png) // 1024} KB PNG]", style="dim")
        )

    async def close(self) -> None:
        """Nothing to close."""

    async def send(
        self,
        target: str,  # noqa: ARG002 - one terminal
        items: Sequence[Rendered],
        *,
        reply_to: str | None = None,  # noqa: ARG002 - no threads in a terminal
        buttons: str | None = None,  # noqa: ARG002 - nothing to press in a terminal
    ) -> str | None:
        """Print the alerts."""
        stamp = self._clock().strftime("%H:%M:%S")
        if len(items) > 1:
            self._console.print(Text(f"{stamp}  {len(items)} alerts", style="bold"))
        for r in items:
            line = Text(f"{stamp}  {r.marker} ")
            line.append(r.headline, style=_STYLE[r.severity])
            self._console.print(line)
            for detail in r.details:
                self._console.print(Text(f"          {detail}", style="dim"))
        self._count += 1
        return str(self._count)
