"""The chart renderer's process: `python -m gexbot.charts.worker module:function`.

It reads `(snapshot, prices)` requests from stdin and answers PNG bytes on stdout, one
length-prefixed pickle per message. It imports the render function by name, so matplotlib
is loaded here and never in the bot's process, where its ~170 ms renders would hold the GIL
under replies. A program of its own (not a multiprocessing child) so it never re-imports the
parent's `__main__`, whatever script started the bot.
"""

from __future__ import annotations

import importlib
import pickle
import resource
import signal
import struct
import sys
from collections.abc import Callable
from typing import IO, Any

HEADER = struct.Struct(">I")  # the length of the pickle that follows


def frame(message: object) -> bytes:
    """One message as it travels on the pipe."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def resolve(target: str) -> Callable[..., bytes]:
    """`package.module:function` → the function."""
    module, _, name = target.partition(":")
    fn: Callable[..., bytes] = getattr(importlib.import_module(module), name)
    return fn


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None  # the bot closed the pipe: stop
    return pickle.loads(stream.read(HEADER.unpack(header)[0]))  # noqa: S301 - our own parent


def serve(target: str, requests: IO[bytes], answers: IO[bytes]) -> None:
    """Render each request until the pipe closes or `None` arrives."""
    render = resolve(target)
    answers.write(frame(("ready", None, peak_rss_mb())))
    answers.flush()
    while (request := _read(requests)) is not None:
        snap, prices = request
        answer: tuple[str, object, float]
        try:
            answer = ("ok", render(snap, prices=prices), peak_rss_mb())
        except Exception as exc:  # noqa: BLE001 - a bad snapshot fails one chart, not the worker
            answer = ("error", f"{type(exc).__name__}: {exc}", peak_rss_mb())
        answers.write(frame(answer))
        answers.flush()


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group: the bot stops this process itself
    # (closing its stdin), and a KeyboardInterrupt traceback here would only be noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print in a library must not corrupt the answers
    serve(sys.argv[1], sys.stdin.buffer, answers)
