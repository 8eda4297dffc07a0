"""QVPO: diffusion policy trained with the Q-weighted variational loss plus a diffusion entropy term.

Everything is a pure function of explicit state and explicit PRNG keys; nothing is jitted here. `make(config,
obs_dim, action_dim)` returns the `jaxdiff.algorithm.Algorithm` (init / update / act / explore); `make_parts`
returns the full `QVPO` bundle (plus sample, q_min and the critic / actor losses). The small pieces live in
`jaxdiff.qvpo.pieces`. Actions are normalised to [-1, 1] throughout.

Per update (spec/qvpo.md): critic step on the first half of the batch (clipped double Q, target action = best of
k_t samples of the TARGET policy ranked by the target critic), then actor step on the second, fresh half (n_d
samples per state from the current policy scored by the just-updated critic, best kept, weight qadv/qcut, plus
n_uniform uniform actions per state weighted omega_ent * w), then Polyak updates of both targets.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdiff import nets
from jaxdiff.algorithm import Algorithm, copy_tree, set_learning_rate
from jaxdiff.data.replay import Transition
from jaxdiff.diffusion import ddpm
from jaxdiff.qvpo.config import QVPOConfig, QVPOHParams
from jaxdiff.qvpo.pieces import (
    Params,
    QVPOState,
    best_of_k,
    chain_eps_fn,
    entropy_coef,
    entropy_rows,
    optimizer,
    polyak,
    top_k_samples,
    transform_weights,
)


class QVPO(NamedTuple):
    """Pure QVPO functions with static sizes bound. See `make`."""

    config: QVPOConfig
    obs_dim: int
    action_dim: int
    init: Callable[[jax.Array], QVPOState]
    update: Callable[[QVPOState, Transition, jax.Array], tuple[QVPOState, dict]]
    explore: Callable[[QVPOState, jax.Array, jax.Array], jax.Array]  # best of k_b
    act: Callable[[QVPOState, jax.Array, jax.Array], jax.Array]  # best of k_eval
    sample: Callable[[Params, jax.Array, jax.Array], jax.Array]  # raw policy samples: (actor params, obs, key)
    q_min: Callable[[Params, jax.Array, jax.Array], jax.Array]  # (critic params, obs, actions) -> min(Q1, Q2)
    critic_targets: Callable  # (state, batch, key) -> y (B,)
    critic_loss: Callable  # (critic params, batch, y) -> (loss, aux)
    actor_batch: Callable  # (state, critic params, obs, key) -> (x0, obs_rows, row_weights, denominator, aux)
    actor_loss: Callable  # (actor params, x0, obs_rows, row_weights, denominator, key) -> loss

    @property
    def agent(self) -> Algorithm:
        """The `Algorithm` view (what `make` returns): batch_rows = 2 x batch_size."""
        return Algorithm("qvpo", self.config, self.obs_dim, self.action_dim, init=self.init, update=self.update,
                         act=self.act, explore=self.explore, batch_rows=2 * self.config.batch_size)


def make_parts(config: QVPOConfig, obs_dim: int, action_dim: int) -> QVPO:
    """Every QVPO piece with the sizes bound: the Algorithm verbs plus sample, q_min and the critic / actor losses."""
    c = config
    act_fn = nets.mish_fast if c.fast_mish else nets.mish
    actor_net = nets.MishMLPNoiseNet(action_dim, hidden=c.actor_hidden, n_hidden=c.actor_layers, activation=act_fn,
                                     param_init=c.param_init)
    critic_net = nets.TwinQ(hidden=c.critic_hidden, activation=act_fn, param_init=c.param_init)
    sched = ddpm.make_schedule(c.diffusion_steps, c.beta_schedule)
    actor_tx, critic_tx = optimizer(c, c.actor_lr), optimizer(c, c.critic_lr)

    def sample(actor_params: Params, obs: jax.Array, key: jax.Array) -> jax.Array:
        """One policy sample per row of obs (full noise, x0 clipped, output clipped to [-1, 1])."""
        eps_fn = chain_eps_fn(actor_net, actor_params, obs, action_dim, c.matmul_dtype)
        return ddpm.ancestral_sample(key, sched, eps_fn, (obs.shape[0], action_dim), clip=1.0)

    def q_min(critic_params: Params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        """min(Q1, Q2) per row."""
        return jnp.min(critic_net.apply(critic_params, obs, actions), axis=0)

    def _best(actor_params, critic_params, obs, key, k):
        return best_of_k(
            key, lambda kk, o: sample(actor_params, o, kk), lambda o, a: q_min(critic_params, o, a), obs, k
        )

    def init(key: jax.Array) -> QVPOState:
        """Fresh networks (targets are copies), Adam states and hparams from the config."""
        k_a, k_c = jax.random.split(key)
        a0, s0 = jnp.zeros((1, action_dim)), jnp.zeros((1, obs_dim))
        actor = actor_net.init(k_a, a0, jnp.zeros((1,), jnp.int32), s0)
        critic = critic_net.init(k_c, s0, a0)
        return QVPOState(
            actor=actor,
            actor_target=copy_tree(actor),  # distinct buffers: the state can be donated
            critic=critic,
            critic_target=copy_tree(critic),
            actor_opt=actor_tx.init(actor),
            critic_opt=critic_tx.init(critic),
            step=jnp.zeros((), jnp.int32),
            hparams=QVPOHParams.from_config(c),
        )

    def critic_targets(state: QVPOState, batch: Transition, key: jax.Array) -> jax.Array:
        """y = r + gamma (1 - done) min_j Qbar_j(s', a'); a' = best of k_t target-policy samples by target Q."""
        _, q_next, _, _ = _best(state.actor_target, state.critic_target, batch.next_obs, key, c.k_t)
        return batch.reward + state.hparams.gamma * (1.0 - batch.done) * q_next

    def critic_loss(critic_params: Params, batch: Transition, y: jax.Array):
        """Sum of both heads' mean squared errors to y, and (q_data, q_target) means."""
        q = critic_net.apply(critic_params, batch.obs, batch.action)  # (2, B)
        loss = jnp.mean((q[0] - y) ** 2) + jnp.mean((q[1] - y) ** 2)
        return loss, {"q_data": jnp.mean(q), "q_target": jnp.mean(y)}

    def actor_batch(state: QVPOState, critic_params: Params, obs: jax.Array, key: jax.Array):
        """Rows of the Q-weighted variational loss: (x0, obs_rows, row_weights, denominator, aux)."""
        hp = state.hparams
        k_samp, k_unif = jax.random.split(key)
        B = obs.shape[0]
        # 1-2. n_d samples per state from the current policy, scored by the (just updated) online critic
        _, _, acts, q = _best(state.actor, critic_params, obs, k_samp, c.n_d)
        v = jnp.mean(q, axis=1, keepdims=True)
        a_top, q_top = top_k_samples(acts, q, c.chosen)  # (B, k, a), (B, k)
        # 3. weight
        w = transform_weights(c.weight_transform, q_top, v, hp.cut)
        x0 = a_top.reshape(-1, action_dim)
        rows_obs = jnp.repeat(obs, c.chosen, axis=0)
        row_w = w.reshape(-1)
        omega = entropy_coef(state.step, hp)
        denom = jnp.float32(B * c.chosen)
        if c.n_uniform > 0 and c.weight_transform != "none":
            # 4. entropy term: uniform actions weighted omega * w(s); left out when alpha == 0 (as official) and in
            # the unweighted mode (official: run without --weighted, the loss has no weights and no uniform rows)
            u_obs, u_act, u_w = entropy_rows(k_unif, obs, w, omega, c.n_uniform, action_dim)
            x0 = jnp.concatenate([x0, u_act], axis=0)
            rows_obs = jnp.concatenate([rows_obs, u_obs], axis=0)
            row_w = jnp.concatenate([row_w, u_w], axis=0)
            denom = jnp.where(hp.entropy_alpha > 0, jnp.float32(x0.shape[0]), denom)
        aux = {
            "q_best": jnp.mean(q_top),
            "v_hat": jnp.mean(v),
            "weight_mean": jnp.mean(w),
            "weight_pos_frac": jnp.mean((w > 0).astype(jnp.float32)),
            "entropy_coef": omega,
            "policy_action_std": jnp.mean(jnp.std(acts, axis=1)),
        }
        return x0, rows_obs, row_w, denom, aux

    def actor_loss(actor_params: Params, x0, rows_obs, row_w, denom, key):
        """5. L = sum over rows and dims of w_row (eps_theta(x_t, t, s) - eps)^2 / (rows x dims)."""
        eps_fn = lambda x, t: actor_net.apply(actor_params, x, t, rows_obs)  # noqa: E731
        return ddpm.eps_loss(key, sched, eps_fn, x0, row_w) * (x0.shape[0] / denom)

    def update(state: QVPOState, batch: Transition, key: jax.Array) -> tuple[QVPOState, dict]:
        """One QVPO step on 2 x batch_size rows: critic on the first half, actor on the second, then Polyak."""
        hp = state.hparams
        B = c.batch_size
        if batch.reward.shape[0] != 2 * B:
            raise ValueError(f"QVPO update expects {2 * B} replay rows (critic half + fresh actor half), "
                             f"got {batch.reward.shape[0]}")
        critic_batch = jax.tree.map(lambda x: x[:B], batch)
        actor_obs = batch.obs[B:]
        k_t, k_s, k_l = jax.random.split(key, 3)

        y = critic_targets(state, critic_batch, k_t)
        (c_loss, c_aux), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic, critic_batch, y)
        critic_opt = set_learning_rate(state.critic_opt, hp.critic_lr)  # the hparams leaf is the learning rate
        c_upd, critic_opt = critic_tx.update(c_grads, critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, c_upd)

        x0, rows_obs, row_w, denom, a_aux = actor_batch(state, critic, actor_obs, k_s)
        a_loss, a_grads = jax.value_and_grad(actor_loss)(state.actor, x0, rows_obs, row_w, denom, k_l)
        actor_opt = set_learning_rate(state.actor_opt, hp.actor_lr)
        a_upd, actor_opt = actor_tx.update(a_grads, actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, a_upd)

        new_state = state.replace(
            actor=actor,
            actor_target=polyak(state.actor_target, actor, hp.tau),
            critic=critic,
            critic_target=polyak(state.critic_target, critic, hp.tau),
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            step=state.step + 1,
        )
        metrics = {
            "critic_loss": c_loss,
            "actor_loss": a_loss,
            "critic_grad_norm": optax.tree.norm(c_grads),
            "actor_grad_norm": optax.tree.norm(a_grads),
            **c_aux,
            **a_aux,
        }
        return new_state, metrics

    def explore(state: QVPOState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Behaviour action: best of k_b policy samples by the online critic."""
        return _best(state.actor, state.critic, obs, key, c.k_b)[0]

    def act(state: QVPOState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Evaluation action: best of k_eval policy samples by the online critic."""
        return _best(state.actor, state.critic, obs, key, c.k_eval)[0]

    return QVPO(c, obs_dim, action_dim, init, update, explore, act, sample, q_min, critic_targets, critic_loss,
                actor_batch, actor_loss)


def make(config: QVPOConfig, obs_dim: int, action_dim: int) -> Algorithm:
    """QVPO as an `Algorithm` (init / update / act / explore, batch_rows = 2 x batch_size)."""
    return make_parts(config, obs_dim, action_dim).agent
