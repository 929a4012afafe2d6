"""Reading the YAML files in ``config/`` (settings, feed list, taxonomy): one loader, one
style of error, each naming the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError


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
