"""jaxdiff: diffusion-policy RL (SRPO offline, QVPO online) as pure, jitted, vmappable JAX functions."""
__version__ = "0.1.0"
