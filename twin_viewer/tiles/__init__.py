"""The twin's tiles: buildings as 3D Tiles 1.1 (GLB with EXT_mesh_features/EXT_structural_metadata), terrain as
quantized-mesh-1.0, and twin/manifest.json saying what was built. Entry point: `build_twin(settings)`."""

from twin_viewer.tiles.build import build_twin

__all__ = ["build_twin"]
