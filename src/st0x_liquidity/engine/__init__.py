"""The hedging engine; see :mod:`.core`."""

from .core import Engine, book_net
from .state import EngineStatus, EngineStopped

__all__ = ["Engine", "EngineStatus", "EngineStopped", "book_net"]
