"""The composition root: the one place that turns settings into clients."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.settings import Settings, SettingsError, env_name


@asynccontextmanager
async def backquant_client(settings: Settings) -> AsyncIterator[BackQuantClient]:
    """A BackQuant client for `settings`, closed on exit. Needs `GEXBOT_API_KEY`."""
    if settings.api_key is None or not settings.api_key.get_secret_value().strip():
        raise SettingsError([f"{env_name('api_key')}: required (your BackQuant API key)"])
    key = settings.api_key.get_secret_value()
    if key != key.strip():
        # BackQuant answers 401 to a key with surrounding whitespace (a documented cause).
        raise SettingsError([f"{env_name('api_key')}: has leading or trailing whitespace"])
    async with build_http_client(settings.api_url, key) as http:
        yield BackQuantClient(http, api_key=key, rng=random.Random())
