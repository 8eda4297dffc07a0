"""Orbax checkpoints of a whole train-state pytree plus the run's config as JSON, with a completeness mark.

Layout: <directory>/<step>/{state,config,jaxdiff_complete.json}. A step counts only once it is marked complete:
after orbax has finished writing it, `save` records the size of every file of the step in jaxdiff_complete.json
(written to a temporary name, then renamed, so the mark itself is never half-written). Reading checks the sizes
first (a truncated or deleted data file is found without asking orbax, which would answer with long TensorStore
tracebacks), then restores; a step that fails either check is skipped with one warning line naming the step and
why, and `--resume` continues from the newest readable one. Directories written before the mark existed (no step
has one) are trusted as orbax left them.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

MARK = "jaxdiff_complete.json"
log = logging.getLogger("jaxdiff.checkpoint")
_WARNED: set[tuple[str, int, str]] = set()  # (directory, step, why): one line per damaged step and process


class CheckpointError(ValueError):
    """No readable checkpoint where one is needed; the message names the directory and --overwrite."""


def _file_sizes(path: str) -> dict[str, int]:
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            if not f.startswith(MARK):  # the mark and its temporary file
                p = os.path.join(root, f)
                out[os.path.relpath(p, path)] = os.path.getsize(p)
    return out


def _short(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:200]}"


class Checkpointer:
    """Thin wrapper over ocp.CheckpointManager; saves are synchronous and marked complete afterwards."""

    def __init__(self, directory: str, max_to_keep: int | None = 2):
        self.directory = os.path.abspath(directory)
        self._mngr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False),
        )

    # ------------------------------------------------------------------------------------------ which steps
    def step_dir(self, step: int) -> str:
        """The directory of step `step`."""
        return os.path.join(self.directory, str(step))

    def damage(self, step: int, marked_dir: bool | None = None) -> str | None:
        """Why `step` cannot be used (None when its files are as they were written)."""
        path = self.step_dir(step)
        if marked_dir is None:
            marked_dir = self._marked_dir()
        mark = os.path.join(path, MARK)
        if not os.path.exists(mark):
            return "it was never marked complete (its write was interrupted)" if marked_dir else None
        try:
            with open(mark) as f:
                expected = json.load(f)["files"]
        except (OSError, ValueError, KeyError) as e:
            return f"its completeness mark is unreadable ({_short(e)})"
        found = _file_sizes(path)
        for name, size in expected.items():
            if name not in found:
                return f"file {name} is missing"
            if found[name] != size:
                return f"file {name} has {found[name]} bytes, {size} were written (truncated or changed)"
        return None

    def _marked_dir(self) -> bool:
        return any(os.path.exists(os.path.join(self.step_dir(s), MARK)) for s in self._mngr.all_steps())

    def scan(self) -> tuple[list[int], dict[int, str]]:
        """(usable steps newest first, {damaged step: why})."""
        marked = self._marked_dir()
        good, bad = [], {}
        for s in sorted(self._mngr.all_steps(), reverse=True):
            why = self.damage(s, marked)
            if why is None:
                good.append(s)
            else:
                bad[s] = why
        return good, bad

    def _skip(self, step: int, why: str) -> None:
        if (self.directory, step, why) not in _WARNED:
            _WARNED.add((self.directory, step, why))
            log.warning("skipping checkpoint step %d in %s: %s", step, self.directory, why)

    def _none_readable(self, bad: dict[int, str]) -> CheckpointError:
        steps = ", ".join(f"step {s}: {w}" for s, w in sorted(bad.items()))
        return CheckpointError(f"no readable checkpoint in {self.directory} ({steps}); pass --overwrite to start "
                               f"over, or choose another --workdir")

    def has_any(self) -> bool:
        """Whether the directory holds any step at all, readable or not."""
        return bool(self._mngr.all_steps())

    def latest_step(self) -> int | None:
        """Newest usable step; None when there is none at all; CheckpointError when all there are damaged.

        Damaged steps newer than the returned one are reported with one warning line each."""
        good, bad = self.scan()
        for s, why in bad.items():
            if not good or s > good[0]:
                self._skip(s, why)
        if not good and bad:
            raise self._none_readable(bad)
        return good[0] if good else None

    # ------------------------------------------------------------------------------------------ write
    def save(self, step: int, state: Any, config: dict | None = None) -> None:
        """Save state (a pytree) and config (JSON) as step `step`, then mark the step complete."""
        if step in self._mngr.all_steps():  # a damaged step a resumed run now writes again
            self._mngr.delete(step)
        args = {"state": ocp.args.StandardSave(state)}
        if config is not None:
            args["config"] = ocp.args.JsonSave(config)
        self._mngr.save(step, args=ocp.args.Composite(**args), force=True)
        self._mngr.wait_until_finished()
        # the mark goes last: a step without it (a crash in between) is never resumed from
        path = self.step_dir(step)
        tmp = os.path.join(path, MARK + ".tmp")
        sizes = _file_sizes(path)
        with open(tmp, "w") as f:
            json.dump({"step": step, "files": sizes}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(path, MARK))

    # ------------------------------------------------------------------------------------------ read
    def _restore_state(self, target: Any, step: int) -> Any:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]

    def restore_latest(self, make_target: Callable[[dict], Any]) -> tuple[int, Any, dict]:
        """(step, state, config) of the newest step that reads back; make_target(config) -> restore target.

        Steps that fail to read are skipped with one warning line each; none readable -> CheckpointError."""
        good, bad = self.scan()
        for s, why in bad.items():
            if not good or s > good[0]:
                self._skip(s, why)
        for s in good:
            try:
                config = self.restore_config(s)
            except Exception as e:  # noqa: BLE001 - any unreadable file: orbax, TensorStore, JSON
                bad[s] = f"its config could not be read ({_short(e)})"
                self._skip(s, bad[s])
                continue
            target = make_target(config)  # its errors (settings that do not match) are the caller's to report
            try:
                return s, self._restore_state(target, s), config
            except Exception as e:  # noqa: BLE001 - any unreadable file: orbax, TensorStore, shapes
                bad[s] = f"it could not be read ({_short(e)})"
                self._skip(s, bad[s])
        raise self._none_readable(bad) if bad else CheckpointError(
            f"no checkpoint in {self.directory}; pass --overwrite to start over, or choose another --workdir")

    def restore(self, target: Any, step: int | None = None) -> tuple[int, Any]:
        """Restore into the structure (and dtypes) of `target`; returns (step, state).

        step=None: the newest readable step (older ones are tried when newer ones fail)."""
        if step is None:
            s, state, _ = self.restore_latest(lambda _: target)
            return s, state
        why = self.damage(step)
        if why is None:
            try:
                return step, self._restore_state(target, step)
            except Exception as e:  # noqa: BLE001
                why = f"it could not be read ({_short(e)})"
        raise CheckpointError(f"checkpoint step {step} in {self.directory} is unusable: {why}; pass --overwrite "
                              f"to start over, or choose another --workdir")

    def restore_config(self, step: int | None = None) -> dict:
        """The JSON stored beside step `step` (default: the newest readable step)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return dict(self._mngr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"])

    def close(self) -> None:
        """Wait for pending saves and release the checkpoint manager."""
        self._mngr.close()


def to_host(tree: Any) -> Any:
    """Device arrays -> numpy (for JSON or plotting)."""
    return jax.tree.map(lambda x: np.asarray(x), tree)
