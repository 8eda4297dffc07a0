"""jaxdiff: diffusion-policy RL (SRPO offline, QVPO online) as pure, jitted, vmappable JAX functions.

Every algorithm is a `jaxdiff.Algorithm` (init / update / act / explore, sizes bound when built):
`jaxdiff.qvpo.make`, `jaxdiff.baselines.sac.make`, `jaxdiff.baselines.td3.make`, and `jaxdiff.srpo.make(...)`'s
behavior / critic / policy stages. `jaxdiff.save(directory, algo, state)` writes any of their states;
`jaxdiff.load_policy(directory)` returns `act(obs, key=None)` for any of them (also from a training workdir).
"""
from jaxdiff.algorithm import Algorithm, Transition

__version__ = "0.1.0"
__all__ = ["Algorithm", "Transition", "save", "load_state", "load_policy"]


def __getattr__(name: str):
    # save / load pull in orbax; import them on first use so `import jaxdiff` stays light
    if name in ("save", "load_state", "load_policy"):
        from jaxdiff import saving

        return getattr(saving, name)
    raise AttributeError(f"module 'jaxdiff' has no attribute {name!r}")
