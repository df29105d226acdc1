"""examples/deploy/: what can be checked without Docker or a systemd host.

The compose file parses and keeps Redis's AOF on; the Dockerfile's COPY sources exist and it runs as a
non-root user under tini; the systemd unit passes `systemd-analyze verify` and stops later than the grace
period; the crontab line is well formed; and every batchrun command line in them parses.
"""
from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from batchrun.definitions.durations import parse_duration
from batchrun.surfaces.cli.parser import build_parser

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "examples" / "deploy"
TIMEOUT_GRACE_S = 2.0

pytestmark = pytest.mark.timeout(60)


def parses(argv: list[str]) -> None:
    assert argv[0] == "batchrun" or argv[0].endswith("/batchrun"), argv
    build_parser().parse_args(argv[1:])


def dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    return [tuple(line.split(None, 1)) for line in text.splitlines()  # type: ignore[misc]
            if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_runs_unprivileged_under_tini() -> None:
    steps = dockerfile()
    users = [arg.strip() for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    entry = json.loads(next(arg for op, arg in steps if op == "ENTRYPOINT"))
    assert entry[0].endswith("tini") and entry[1] == "--"
    parses(json.loads(next(arg for op, arg in steps if op == "CMD")))
    for op, arg in steps:
        if op == "COPY":
            sources = [a for a in arg.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the build context (the repository root)"


def test_compose_keeps_aof_on_and_stops_after_the_grace_period() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    supervisor = services["supervisor"]
    assert supervisor["build"]["dockerfile"] == "examples/deploy/Dockerfile"
    assert (DEPLOY / supervisor["build"]["context"]).resolve() == REPO
    grace = parse_duration(supervisor["environment"]["BATCHRUN_GRACE_PERIOD"])
    assert parse_duration(supervisor["stop_grace_period"]) > grace + TIMEOUT_GRACE_S
    parses(services["dashboard"]["command"])
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} is published beyond the host's loopback"


def test_systemd_unit_restarts_and_outlasts_the_grace_period(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment, method-assign]
    unit.read(DEPLOY / "batchrun.service")
    service = unit["Service"]
    assert service["Restart"] == "always" and service["KillMode"] == "mixed"
    grace = parse_duration(next(e for e in service.get("Environment", "").split("\n")
                                if e.startswith("BATCHRUN_GRACE_PERIOD=")).split("=", 1)[1])
    assert parse_duration(service["TimeoutStopSec"]) > grace + TIMEOUT_GRACE_S
    parses(shlex.split(service["ExecStart"]))
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed here; the unit's keys were checked above")
    installed = Path(sys.executable).parent / "batchrun"
    copy = tmp_path / "batchrun.service"
    copy.write_text((DEPLOY / "batchrun.service").read_text().replace("/srv/batchrun/.venv/bin/batchrun",
                                                                      str(installed)))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_crontab_line_drains_until_empty() -> None:
    lines = [line for line in (DEPLOY / "crontab").read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    for field, (low, high) in zip(fields[:5], ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))):
        assert re.fullmatch(r"\*(/\d+)?|\d+(-\d+)?(,\d+(-\d+)?)*", field), field
        assert all(low <= int(n) <= high for n in re.findall(r"\d+", field.split("/")[0]))
    command = fields[5].split("&&", 1)[1].split(">>")[0]
    argv = shlex.split(command)
    parses(["batchrun", *argv[1:]])
    assert "--until-empty" in argv
