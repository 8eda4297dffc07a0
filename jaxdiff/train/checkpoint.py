"""Orbax checkpoints of a whole train-state pytree plus the run's config as JSON.

Layout: <directory>/<step>/{state,config}. The latest checkpoint is what `--resume` continues from.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
    """Thin wrapper over ocp.CheckpointManager; saves are synchronous so a crash never leaves half a step."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._mngr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False),
        )

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def save(self, step: int, state: Any, config: dict | None = None) -> None:
        args = {"state": ocp.args.StandardSave(state)}
        if config is not None:
            args["config"] = ocp.args.JsonSave(config)
        self._mngr.save(step, args=ocp.args.Composite(**args), force=True)
        self._mngr.wait_until_finished()

    def restore(self, target: Any, step: int | None = None) -> tuple[int, Any]:
        """Restore into the structure (and dtypes) of `target`; returns (step, state)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        return step, out["state"]

    def restore_config(self, step: int | None = None) -> dict:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return dict(self._mngr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"])

    def close(self) -> None:
        self._mngr.close()


def to_host(tree: Any) -> Any:
    """Device arrays -> numpy (for JSON or plotting)."""
    return jax.tree.map(lambda x: np.asarray(x), tree)
