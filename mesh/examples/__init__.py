"""Example activity functions shipped with mesh (used by ``mesh demo`` and config/mesh.yaml)."""
