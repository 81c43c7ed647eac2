"""The synthetic pricing model's settings (only the vol surface is needed by this stand-in)."""

from .vol_surface import BandMultiplier, VolSurfaceConfig

__all__ = ["BandMultiplier", "VolSurfaceConfig"]
