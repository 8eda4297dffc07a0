"""Gaussian-policy baselines the QVPO paper compares against: `sac.make` / `td3.make` return the
`jaxdiff.algorithm.Algorithm` interface that QVPO's `make` returns too."""
from jaxdiff.baselines import sac, td3

__all__ = ["sac", "td3"]
