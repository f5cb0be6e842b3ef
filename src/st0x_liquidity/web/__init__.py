"""The operations dashboard, /health and /metrics, served by the bot (a built-in plugin)."""
