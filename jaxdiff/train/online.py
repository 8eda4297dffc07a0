"""Online RL for any `jaxdiff.algorithm.Algorithm` (QVPO, SAC, TD3, ...): the public names in one place.

  run_gym(algo, env_id, cfg, workdir, points=None, ...)   gymnasium env stepped on the host   (online_gym)
  run_jax(algo, env, cfg, workdir, points=None, ...)      pure-JAX env, lax.scan chunks       (online_jax)
  load_agent_state / load_checkpoint_meta                 one run's state back from a workdir (online_io)

One driver per kind of env; a single run is the list of one run point [{"seed": cfg.seed}], with the same outputs
as many. Pure pieces: `online_state` (RunnerState, per-step functions), `jax_env_loop` (JaxEnv, the scanned
chunk), `run_points` (points, stacking, device placement).
"""
from jaxdiff.train.jax_env_loop import JaxEnv, JaxLoopState, jax_chunk, jax_evaluate, jax_init, step_flags
from jaxdiff.train.online_gym import run_gym
from jaxdiff.train.online_io import load_agent_state, load_checkpoint_meta
from jaxdiff.train.online_jax import run_jax
from jaxdiff.train.online_state import OnlineConfig, RunnerState, init_runner

__all__ = ["JaxEnv", "JaxLoopState", "OnlineConfig", "RunnerState", "init_runner", "jax_chunk", "jax_evaluate",
           "jax_init", "load_agent_state", "load_checkpoint_meta", "run_gym", "run_jax", "step_flags"]
