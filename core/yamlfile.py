"""Finding and reading the YAML config files (settings, feed list, taxonomy): one lookup
order, one loader, one style of error, each naming the file and what is wrong with it.

Each file is looked for, in order: the file an environment variable names, then
``config/<name>`` under the working directory, then the default the package ships. The
checkout's ``config/`` is the only copy of those defaults; a wheel carries it as
``core/defaults/`` (pyproject.toml), so an installed ``tradewire`` works from any directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError

# Relative on purpose: the working directory's config/ overrides the packaged defaults.
LOCAL_CONFIG_DIR = Path("config")


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """The mapping at the top of the YAML file ``path`` (empty for an empty file).

    ``what`` names the file's role in errors ("settings file", "feed list", "taxonomy").
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {what} {path}: not UTF-8 ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must be a mapping at the top level")
    return data


def packaged_config_dir() -> Path:
    """The shipped defaults: ``core/defaults/`` when installed, the checkout's ``config/``
    when run from source (there is no ``core/defaults/`` in a checkout)."""
    core_dir = Path(__file__).resolve().parent
    installed = core_dir / "defaults"
    return installed if installed.is_dir() else core_dir.parent / "config"


def config_candidates(name: str) -> tuple[Path, Path]:
    """Where ``name`` is looked for when no environment variable names a file, in order."""
    return LOCAL_CONFIG_DIR / name, packaged_config_dir() / name


def find_config_file(name: str) -> Path | None:
    """The first of ``config_candidates(name)`` that exists, or None."""
    return next((path for path in config_candidates(name) if path.is_file()), None)


def locate_config_file(name: str, what: str, env_name: str) -> Path:
    """Like find_config_file, but a ConfigError naming every place looked when none exists."""
    found = find_config_file(name)
    if found is None:
        places = ", ".join(str(path.absolute()) for path in config_candidates(name))
        raise ConfigError(f"no {what} found: {env_name} is not set and none of {places} exists")
    return found
