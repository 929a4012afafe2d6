"""The service user's ACL names every command our Lua scripts call.

A script that calls a command the user may not run fails only when it runs, under that
user (NOPERM inside EVALSHA); the integration tests in test_redis_acl.py find it after
minutes, this finds it from the source in a second.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "redis" / "users.acl.template"
CALL = re.compile(r"redis\.p?call\(\s*'([A-Za-z]+)'")


def service_user_commands() -> set[str]:
    line = next(
        line for line in TEMPLATE.read_text().splitlines() if line.startswith("user tradewire ")
    )
    return {word[1:].lower() for word in line.split() if word.startswith("+")}


def script_commands() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for package in ("core", "workers", "service"):
        for path in (ROOT / package).rglob("*.py"):
            for command in CALL.findall(path.read_text()):
                found.setdefault(command.lower(), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_command_a_script_calls_is_granted_to_the_service_user() -> None:
    commands = script_commands()
    assert {"zadd", "hincrby", "set"} <= commands.keys()  # the scan finds the scripts
    granted = service_user_commands()
    missing = {c: sorted(paths) for c, paths in commands.items() if c not in granted}
    assert not missing, f"add to the tradewire user in {TEMPLATE.name}: {missing}"
