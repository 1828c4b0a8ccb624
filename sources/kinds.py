"""The registry of source kinds: each names its config model (whose SECRETS are sealed at rest and never shown), the
checks a config must pass when it is saved (and again at every sync), and how a sync opens a session on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import ValidationError

from sources.connectors import folder, git, s3, web
from sources.connectors.base import Limits, Session, SourceError, StrictConfig


@dataclass(frozen=True)
class Kind:
    name: str
    config: type[StrictConfig]
    check: Callable[[StrictConfig, Limits], None]  # SourceError: the config may not be used
    open: Callable[[StrictConfig, Limits, str], Session]  # (config, limits, source id)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.config.SECRETS


KINDS: dict[str, Kind] = {
    "folder": Kind("folder", folder.FolderConfig, folder.check, lambda c, lim, _: folder.FolderSession(c, lim)),
    "s3": Kind("s3", s3.S3Config, s3.check, lambda c, lim, _: s3.S3Session(c, lim)),
    "git": Kind("git", git.GitConfig, git.check, lambda c, lim, sid: git.GitSession(c, lim, sid)),
    "web": Kind("web", web.WebConfig, web.check, lambda c, lim, _: web.WebSession(c, lim)),
}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"kind {name!r} is not one of {', '.join(KINDS)}") from None


def split_secrets(kind: Kind, config: dict) -> tuple[dict, dict]:
    """(what is shown, what is sealed) of a full config."""
    shown = {k: v for k, v in config.items() if k not in kind.secrets}
    hidden = {k: v for k, v in config.items() if k in kind.secrets and v is not None}
    return shown, hidden


def parse_config(kind: Kind, config: dict) -> StrictConfig:
    """The config as its kind's model (pydantic ValidationError for a field that is wrong)."""
    return kind.config.model_validate(config)


def problems(e: ValidationError) -> str:
    """A config's validation errors in one line, naming the fields and never their values (credentials)."""
    return "; ".join(f"config.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                     for err in e.errors(include_url=False, include_input=False, include_context=False))


def checked(kind: Kind, config: dict, limits: Limits) -> StrictConfig:
    """A config that may be saved: valid for its kind and allowed by the operator's limits. ValidationError, or
    SourceError saying what is not allowed."""
    model = parse_config(kind, config)
    kind.check(model, limits)
    return model


__all__ = ["KINDS", "Kind", "SourceError", "ValidationError", "checked", "kind_of", "parse_config", "problems",
           "split_secrets"]
