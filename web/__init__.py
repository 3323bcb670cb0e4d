"""The aiohttp application: REST below /api, WebSocket at /ws, /health and /metrics."""
