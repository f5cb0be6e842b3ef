"""st0x-example-broker: a paper broker plugin for st0x-liquidity (see docs/plugins.md)."""

from .executor import ExamplePaperConfig, ExamplePaperExecutor

__all__ = ["ExamplePaperConfig", "ExamplePaperExecutor"]
