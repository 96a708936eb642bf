"""Where things live: ONEMAP_HOME (default ./data) and ONEMAP_LAKE (default $ONEMAP_HOME/lake)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    home: Path
    lake_uri: str

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
    return Settings(home=home, lake_uri=lake)
