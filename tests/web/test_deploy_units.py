"""The systemd units in deploy/ as systemd itself reads them (`systemd-analyze`).

`verify` parses each template instance (unknown keys and bad values are
warnings on stderr, so the test requires an empty stderr); `security
--offline` scores the hardening. The ExecStart interpreter is pointed at this
venv's Python, since /opt/st0x-liquidity does not exist here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = ("st0x-liquidity@.service", "st0x-liquidity-report@.service")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def instance(tmp: Path, template: str) -> Path:
    text = (DEPLOY / template).read_text()
    text = text.replace("/opt/st0x-liquidity/current/bin/python", str(Path(sys.executable)))
    path = tmp / template.replace("@.", "@alpaca.")
    path.write_text(text)
    return path


def service_section(template: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = None
    for raw in (DEPLOY / template).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("template", UNITS)
def test_unit_has_what_the_runbook_promises(template: str) -> None:
    service = service_section(template)
    assert service["User"] == ["st0x"] and service["Group"] == ["st0x"]
    assert service["Restart"] == ["on-failure"]
    assert service["EnvironmentFile"] == ["/etc/st0x-liquidity/%i.env"]
    assert "--config-file /etc/st0x-liquidity/%i.toml" in service["ExecStart"][0]
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert service[key][0] in ("yes", "strict"), key
    assert service["CapabilityBoundingSet"] == [""]
    if template == "st0x-liquidity@.service":
        assert service["Type"] == ["notify"] and service["WatchdogSec"] == ["30"]


@pytest.mark.parametrize("template", UNITS)
def test_the_documentation_the_unit_names_is_in_the_wheel(template: str) -> None:
    """Documentation= names a file the wheel installs under <venv>/share/doc/st0x-liquidity."""
    import tomllib

    text = (ROOT / "deploy" / template).read_text()
    [doc] = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("Documentation=")]
    prefix = "file:///opt/st0x-liquidity/current/share/doc/st0x-liquidity/"
    assert doc.startswith(prefix)
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    files = shipped["data-files"]["share/doc/st0x-liquidity"]
    assert f"docs/{doc.removeprefix(prefix)}" in files


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("template", UNITS)
def test_systemd_accepts_the_unit_and_rates_it_hardened(tmp_path: Path, template: str) -> None:
    assert SYSTEMD_ANALYZE is not None
    unit = instance(tmp_path, template)
    verify = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr
    assert [line for line in verify.stderr.splitlines() if unit.name in line] == []
    security = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert found is not None, security.stdout[-500:] + security.stderr
    assert float(found.group(1)) <= 2.0  # systemd calls < 2 "OK"; 10 is unprotected
