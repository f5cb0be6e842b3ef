"""Services get the AppServices facade: the adapters by protocol, the engine's controls."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from support.harness import make_config

from st0x_liquidity import AppServices, hookimpl
from st0x_liquidity.app import build_app, open_store
from st0x_liquidity.plugins import load_registry


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl
    def st0x_app_services(self, app: AppServices) -> list[Any]:
        self.seen.append(app)

        async def service() -> None:
            app.engine.pause("from a service")
            app.extras["touched"] = True

        return [service]


async def test_a_service_gets_the_facade_and_can_use_the_engine_controls(tmp_path: Path) -> None:
    (tmp_path / "fills.jsonl").touch()
    config = make_config(tmp_path)
    registry = load_registry()
    recorder = Recorder()
    registry.manager.register(recorder)
    store = open_store(config, lease=True)
    await store.open()
    try:
        app = await build_app(config, registry, store)
        services = [
            s
            for result in registry.manager.hook.st0x_app_services(app=app.services())
            if result
            for s in result
        ]
        await asyncio.gather(*(s() for s in services))
        [facade] = recorder.seen
        assert isinstance(facade, AppServices)
        assert facade.config is config and facade.store is store
        assert app.engine.status.paused == "from a service"
        assert app.extras["touched"] is True  # one dict shared with the app
    finally:
        await store.close()
