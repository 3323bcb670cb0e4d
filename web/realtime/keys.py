"""Typed keys of what the realtime package keeps on the application."""

from __future__ import annotations

from aiohttp import web

from web.realtime.hub import Hub

HUB = web.AppKey("ws_hub", Hub)
