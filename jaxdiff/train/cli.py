"""What every launcher does with bad input: one line naming the flag and the fix on stderr, exit 1, no traceback.

    from jaxdiff.train import cli
    def main(argv): ...                         # raise cli.FlagError("--x=3: must be >= 4") for bad input
    if __name__ == "__main__":
        cli.run(main)                           # absl app.run with one-line errors and quiet library logs

Errors that mean "the user asked for something that cannot be done" (FlagError, ValueError, FileNotFoundError,
FileExistsError, absl's UsageError and flag-parsing errors) become one line and exit code 1; a run that diverged
(`jaxdiff.train.divergence.DivergenceError`) exits 2. Set JAXDIFF_TRACEBACK=1 to get the Python traceback back when
debugging jaxdiff itself. Nothing here imports jax, so launchers can check flags before paying for that import.
"""
from __future__ import annotations

import difflib
import logging as pylogging
import os
import sys
from typing import Any, Callable, Iterable

from absl import app, flags
from absl import logging as absl_logging

EXIT_USAGE = 1
EXIT_DIVERGED = 2


class FlagError(ValueError):
    """Bad command-line input; the message names the flag and the fix."""


def prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "jaxdiff"


def refuse(message: str, code: int = EXIT_USAGE) -> None:
    """Print `<launcher>: error: <message>` as ONE line on stderr and exit with `code`."""
    line = " ".join(str(message).split())  # a message must never spill over several lines
    print(f"{prog()}: error: {line}", file=sys.stderr, flush=True)
    sys.exit(code)


def _explain_parse_error(e: flags.Error) -> str:
    msg = str(e)
    if "invalid literal for int()" in msg:
        return f"{msg.split(':')[0].replace('flag ', '')} is not an integer: give a whole number, e.g. 1000"
    if "could not convert string to float" in msg:
        return f"{msg.split(':')[0].replace('flag ', '')} is not a number: give e.g. 3e-4"
    if isinstance(e, flags.UnrecognizedFlagError):
        return f"{msg}; --helpshort lists this launcher's flags"
    return f"{msg} (see --helpshort)"


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, but a bad value is one line (no 'Pass --helpshort' footer, no usage dump)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        refuse(_explain_parse_error(e))
    return []  # unreachable


def quiet_libraries() -> None:
    """Keep orbax's per-checkpoint INFO lines and JAX's backend notices (libtpu, CUDA) out of the way.

    --verbosity=0 (or higher) on the command line shows them again."""
    if not any(a.startswith(("--verbosity", "-v")) for a in sys.argv[1:]):
        absl_logging.set_verbosity(absl_logging.WARNING)
        for name in ("jax._src.xla_bridge", "orbax"):
            pylogging.getLogger(name).setLevel(pylogging.ERROR)
    os.environ.setdefault("TPU_MIN_LOG_LEVEL", "3")  # libtpu's start-up banner, when libtpu is installed


def guarded(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """main, with bad-input exceptions turned into one line and a non-zero exit."""
    def wrapped(argv: list[str]) -> Any:
        if len(argv) > 1:
            refuse(f"unexpected arguments {argv[1:]}: every option is a --flag=value (see --helpshort)")
        quiet_libraries()
        try:
            return main(argv)
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001 - sorted below; anything else keeps its traceback
            if os.environ.get("JAXDIFF_TRACEBACK"):
                raise
            from jaxdiff.train.divergence import DivergenceError

            if isinstance(e, DivergenceError):
                refuse(str(e), EXIT_DIVERGED)
            if isinstance(e, (ValueError, FileNotFoundError, FileExistsError, app.UsageError)):
                refuse(str(e))
            raise

    return wrapped


def run(main: Callable[[list[str]], Any]) -> None:
    """absl.app.run(main) with one-line flag errors (see module docstring)."""
    app.run(guarded(main), flags_parser=parse_flags)


# ----------------------------------------------------------------------------------------------- checks
def positive(**values: Any) -> None:
    """Refuse any given value that is not > 0 (None = flag not given, skipped)."""
    for name, v in values.items():
        if v is not None and v <= 0:
            raise FlagError(f"--{name}={v}: must be a positive number")


def non_negative(**values: Any) -> None:
    for name, v in values.items():
        if v is not None and v < 0:
            raise FlagError(f"--{name}={v}: must be >= 0")


def gym_env_id(env_id: str, flag: str = "env", extra: Iterable[str] = ()) -> None:
    """Refuse an id gymnasium does not know, with close matches and how to list valid ids (no env is built)."""
    import gymnasium as gym

    known = list(gym.envs.registry) + list(extra)
    if env_id in known:
        return
    close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise FlagError(f"--{flag}={env_id}: not a gymnasium env id; {hint}list valid ids with "
                    f"python -c \"import gymnasium; gymnasium.pprint_registry()\"")


def resumable(directory: str, workdir: str) -> int:
    """The step --resume will continue from in `directory`; refuse when there is nothing to resume."""
    from jaxdiff.train.checkpoint import Checkpointer

    if not os.path.isdir(directory) or not os.listdir(directory):
        raise FlagError(f"--resume: nothing to resume in --workdir={workdir} (no checkpoints in {directory}); "
                        f"check --workdir, or drop --resume to start a new run")
    ck = Checkpointer(directory)
    try:
        step = ck.latest_step()
    finally:
        ck.close()
    if step is None:
        raise FlagError(f"--resume: nothing to resume in --workdir={workdir} (no checkpoints in {directory}); "
                        f"check --workdir, or drop --resume to start a new run")
    return step
