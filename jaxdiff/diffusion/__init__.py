"""Diffusion core: continuous VP-SDE (`vpsde`) and discrete DDPM (`ddpm`)."""
from jaxdiff.diffusion import ddpm, vpsde

__all__ = ["ddpm", "vpsde"]
