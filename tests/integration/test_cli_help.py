"""The command line's help is written for users: every command and option explains itself."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Iterator

from service.cli import _parser
from tests.integration.test_cli import tradewire


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command the help lists, with its parser; hidden ones are not listed."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                command = action.choices[listed.dest]
                yield (*path, listed.dest), command
                yield from _commands(command, (*path, listed.dest))


def test_every_command_has_a_description_and_every_argument_help() -> None:
    commands = dict(_commands(_parser()))
    assert ("status",) in commands and ("failed", "list") in commands
    assert ("feeds", "discover") in commands and ("work-one",) not in commands
    for path, command in commands.items():
        assert command.description, f"tradewire {' '.join(path)} has no description"
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            where = f"tradewire {' '.join(path)} {action.option_strings or action.dest}"
            assert action.help and action.help != argparse.SUPPRESS, f"{where} has no help"
        text = command.format_help()
        assert "SUPPRESS" not in text and "``" not in text


def test_top_level_help_is_for_users() -> None:
    done = tradewire("--help")
    assert done.returncode == 0
    text = done.stdout
    assert "SUPPRESS" not in text and "work-one" not in text
    assert "``" not in text and "settings are loaded" not in text
    assert text.index("usage:") < text.index("US-China trade") < text.index("status")
    assert "--version" in text


def test_version() -> None:
    done = tradewire("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"tradewire {importlib.metadata.version('tradewire')}"


def test_subcommand_help_runs_for_each_command() -> None:
    for path in [("tail",), ("extract",), ("failed", "list"), ("feeds", "import")]:
        done = tradewire(*path, "--help")
        assert done.returncode == 0, done.stderr
        assert "usage: tradewire " + " ".join(path) in done.stdout
