"""P&L reporting: the FIFO reporter process and its CLI (a built-in plugin)."""
