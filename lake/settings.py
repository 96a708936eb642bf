"""Where things live: ONEMAP_HOME (default ./data) and ONEMAP_LAKE (default $ONEMAP_HOME/lake); how the server is
reached: ONEMAP_PUBLIC_URL and ONEMAP_ALLOWED_HOSTS (the names links may be built from)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ALLOWED_HOSTS = "127.0.0.1,localhost,[::1]"


@dataclass(frozen=True)
class Settings:
    home: Path
    lake_uri: str
    public_url: str | None = None
    """The base URL clients reach the server at (behind a proxy, say); links are built from it, never from headers."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names (lower case, IPv6 in brackets) a request's Host header may carry; any other is refused."""

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def feeds_dir(self) -> Path:
        """Operator-added feed contracts, read beside the ones shipped in the repo."""
        return self.home / "feeds"

    @property
    def twin(self) -> Path:
        """The 3D twin's built files (buildings tileset, terrain, manifest.json) that the viewer serves."""
        return self.home / "twin"

    @property
    def lake_is_local(self) -> bool:
        return "://" not in self.lake_uri or self.lake_uri.startswith("file://")


def current_settings() -> Settings:
    """Read the environment each time so tests and the CLI can point at another home."""
    home = Path(os.environ.get("ONEMAP_HOME", "data")).resolve()
    lake = os.environ.get("ONEMAP_LAKE") or str(home / "lake")
    if "://" not in lake:
        lake = str(Path(lake).resolve())
    public_url = os.environ.get("ONEMAP_PUBLIC_URL", "").strip().rstrip("/") or None
    hosts = os.environ.get("ONEMAP_ALLOWED_HOSTS", DEFAULT_ALLOWED_HOSTS)
    return Settings(home=home, lake_uri=lake, public_url=public_url,
                    allowed_hosts=tuple(host_name(h) for h in hosts.split(",") if h.strip()))


def host_name(host: str) -> str:
    """A host as a Host header spells it: lower case, an IPv6 address in brackets."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
