"""Issue 2's two halves counted in instructions (valgrind's callgrind), not timed.

    python benchmarks/instructions.py               # 20,000 fills, ~3 minutes
    python benchmarks/instructions.py --fills 5000

This shared machine's speed swings by up to 2x within minutes, so a change of
a few percent is invisible in wall-clock or CPU time, even in the halves that
``components.py`` times alone. The number of instructions a run executes
hardly depends on the machine's load: two runs' totals agree to about 0.2 %,
their per-fill figures to about 1 % (the engine's timers fire by wall time,
which valgrind stretches), so compare versions in runs side by side. It is a
proxy (it does not see cache misses, the kernel's share or fsync waits):

* **engine**: the engine alone (the writer stubbed, as in ``components.py``)
  over N fills, minus the same process stopping once the N fills are made,
  so imports and making the fills cancel out (the engine's own start-up,
  opening the store and the dry-run broker, stays in: ~1 % at 20,000 fills);
* **writer**: a fresh writer process replaying the frames a real run of N
  fills sent to its writer (its start-up, ~40 ms of imports, is included).

Needs valgrind (``apt install valgrind``). Run from the checkout, with the
code under test importable (``PYTHONPATH=/path/to/src`` for another version).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_COLLECTED = re.compile(r"Collected : (\d+)")


def collected(report: str) -> int:
    """The instruction count in callgrind's report (its standard error)."""
    found = _COLLECTED.findall(report)
    if not found:
        raise SystemExit(f"callgrind printed no instruction count:\n{report[-2000:]}")
    return int(found[-1])


def _callgrind(argv: list[str], stdin: Path | None = None) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts every run
    with open(stdin or os.devnull, "rb") as source:
        done = subprocess.run(
            command,
            stdin=source,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    report = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed under valgrind:\n{report[-2000:]}")
    return collected(report)


def _engine_child(fills: int, *, run_engine: bool) -> None:
    """Make the fills and (``run_engine``) run the engine alone on them.

    Only the built-in plugins it needs are loaded: the full registry imports
    web3, whose curve constants take minutes of Python under valgrind.
    """
    import components
    import pluggy
    import run

    from st0x_liquidity import hookspecs, plugins

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in ("st0x_liquidity.builtin.dry_run", "st0x_liquidity.builtin.replay"):
        pm.register(importlib.import_module(name), name=name)
    registry = plugins.load_registry(pm)
    run.load_registry = lambda: registry  # type: ignore[assignment]
    made = run.make_fills(fills)
    if not run_engine:
        return
    with tempfile.TemporaryDirectory() as d, components._writer_replaced():
        asyncio.run(run.run_engine(made, Path(d)))


def engine_per_fill(fills: int) -> dict[str, float]:
    script = str(Path(__file__).resolve())
    # Outside valgrind first: modules changed since their last import are
    # compiled once, here, not inside whichever count runs first.
    subprocess.run([sys.executable, script, "--child-engine", "10"], check=True)
    total = _callgrind([sys.executable, script, "--child-engine", str(fills)])
    base = _callgrind([sys.executable, script, "--child-make", str(fills)])
    return {
        "engine_instructions": total,
        "baseline_instructions": base,
        "engine_instructions_per_fill": round((total - base) / fills),
    }


def writer_per_fill(fills: int) -> dict[str, float]:
    import components
    import run

    from st0x_liquidity.store import write_worker
    from st0x_liquidity.store.sqlite import SqliteStore

    with tempfile.TemporaryDirectory() as d:
        frames, db = Path(d) / "frames.bin", Path(d) / "replay.db"
        components.capture_frames(run.make_fills(fills), frames)

        async def create() -> None:
            async with SqliteStore(db):
                pass

        asyncio.run(create())
        script = str(Path(write_worker.__file__).resolve())
        total = _callgrind([sys.executable, "-I", script, str(db), "FULL"], stdin=frames)
    return {"writer_instructions": total, "writer_instructions_per_fill": round(total / fills)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fills", type=int, default=20_000)
    parser.add_argument("--child-engine", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-make", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.child_engine is not None or args.child_make is not None:
        _engine_child(args.child_engine or args.child_make, run_engine=bool(args.child_engine))
        return
    if args.fills < 1:
        parser.error("--fills must be at least 1")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt install valgrind)")
    result = {"fills": args.fills, **engine_per_fill(args.fills), **writer_per_fill(args.fills)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
