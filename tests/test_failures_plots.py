"""Issue 11, plots people can read: markers on short curves, labelled axes, distinct titles for the bandit's
with / without-entropy runs, and the SRPO toy saying when its final action lies outside the data's support."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff import srpo
from jaxdiff.data import bandits
from jaxdiff.srpo.data import bandit_record
from jaxdiff.srpo.plots import bandit_figure
from jaxdiff.train import logging as logging_lib
from jaxdiff.train import multirun, online_io


def test_single_point_curves_have_markers_and_labelled_axes(tmp_path):
    one = [{"env_step": 3000, "eval/return_mean": 0.9}]
    fig = logging_lib.plot_curves(one, "env_step", ["eval/return_mean"], str(tmp_path / "a.png"))
    ax = fig.axes[0]
    assert ax.lines[0].get_marker() == "o" and ax.get_xlabel() == "env step" and ax.get_ylabel() == "eval/return_mean"
    many = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(100)]
    line = logging_lib.plot_curves(many, "step", ["loss"], str(tmp_path / "b.png")).axes[0].lines[0]
    assert line.get_marker() in (None, "None", "")  # long curves stay plain lines
    pts = [{"seed": 0}, {"seed": 1}]
    recs = [{"run": k, "env_step": 3000, "eval/return_mean": 0.5 + k} for k in range(2)]
    ax = multirun.plot_groups(recs, pts, "env_step", ["eval/return_mean"], str(tmp_path / "c.png")).axes[0]
    assert ax.lines[0].get_marker() == "o" and ax.get_ylabel() == "eval/return_mean"


def test_bandit_variants_get_different_titles():
    with_ent = online_io.title({"algo": "qvpo", "label": "with entropy term"}, "bandit", [{"seed": 0}])
    without = online_io.title({"algo": "qvpo", "label": "without entropy term"}, "bandit", [{"seed": 0}])
    assert with_ent != without and "without entropy term" in without
    assert online_io.title({"algo": "sac"}, "Hopper-v5", [{"seed": 1}]) == "sac Hopper-v5: seed 1"
    assert online_io.title({"algo": "sac"}, "Hopper-v5", [{"seed": 1}, {"seed": 2}]) == "sac Hopper-v5: 2 runs"


def test_srpo_toy_says_when_the_action_is_outside_the_support(tmp_path):
    ds = srpo.load_dataset("bandit-imbalanced")
    mode = np.asarray(ds.data.action[np.argmax(ds.data.reward[:5000])])  # a data point: inside
    inside = bandit_record(mode, ds)
    outside = bandit_record(np.zeros(2, np.float32), ds)  # the centre, between the four modes
    assert inside["in_support"] and "note" not in inside
    assert not outside["in_support"] and "outside the data's support" in outside["note"]
    assert outside["support_mass"] < bandits.SUPPORT_THRESHOLD

    cfg = srpo.configure("bandit-imbalanced", behavior_width=16, behavior_blocks=1, critic_width=16,
                             policy_width=16)
    algos = srpo.make(cfg, ds.obs_dim, ds.action_dim)
    abstract = jax.eval_shape(lambda: srpo.init_states(algos, 0))
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), abstract)  # a zero policy acts at (0, 0)
    fig = bandit_figure(algos, zeros["behavior"], zeros["policy"], ds, str(tmp_path / "bandit.png"), num_samples=64)
    assert "OUTSIDE the data's support" in fig._suptitle.get_text()
