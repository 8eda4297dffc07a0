"""Gaussian-policy baselines the QVPO paper compares against, as `OnlineAgent` bundles (see jaxdiff/agent.py)."""
from jaxdiff.baselines import sac, td3

__all__ = ["sac", "td3"]
