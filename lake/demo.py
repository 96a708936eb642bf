"""The whole demo region's deliveries in one call: survey feeds, the imagery catalog and the CIM/BIM models.

Each part stays in its own module (survey in demo_region, imagery in demo_imagery, models in demo_cim); this
is the one place that says what "the demo" is, for the CLI and the tests.
"""

from __future__ import annotations

from pathlib import Path

from lake.demo_cim import write_demo_cim
from lake.demo_imagery import write_demo_imagery
from lake.demo_region import DemoManifest, Progress, generate_demo_region


def write_demo(landing: Path, parcels: int = 20_000, seed: int = 0,
               progress: Progress | None = None) -> tuple[DemoManifest, dict[str, int]]:
    """Write every demo delivery under `landing/`; returns the survey manifest and the other parts' counts."""
    manifest = generate_demo_region(landing, parcels=parcels, seed=seed, progress=progress)
    report = progress or (lambda step, done, total: None)
    report("imagery", 0, 1)
    imagery = write_demo_imagery(landing, seed=seed)
    report("CIM/BIM models", 0, 1)
    models = write_demo_cim(landing, seed=seed)
    report("CIM/BIM models", 1, 1)
    return manifest, {**{f"imagery_{k}": v for k, v in imagery.items()},
                      **{f"models_{k}": v for k, v in models.items()}}
