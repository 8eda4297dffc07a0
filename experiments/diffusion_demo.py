"""Fit a diffusion model to a built-in 2D dataset and plot its samples over the data.

  python experiments/diffusion_demo.py                       # VP-SDE + DPM-Solver on 8 Gaussians
  python experiments/diffusion_demo.py --model=ddpm --dataset=moons
"""
import os
import time

import jax
from absl import flags, logging

from jaxdiff.data import toy
from jaxdiff.diffusion import toy_fit
from jaxdiff.train import cli
from jaxdiff.train.logging import dumps

_DATASET = flags.DEFINE_enum("dataset", "8gaussians", sorted(toy.DATASETS), "Built-in 2D dataset.")
_MODEL = flags.DEFINE_enum("model", "vpsde", ["vpsde", "ddpm"], "Continuous VP-SDE (DPM-Solver) or DDPM (T=20).")
_STEPS = flags.DEFINE_integer("steps", 4000, "Training steps.")
_BATCH = flags.DEFINE_integer("batch", 256, "Batch size.")
_WIDTH = flags.DEFINE_integer("width", 64, "Network width.")
_LR = flags.DEFINE_float("lr", 3e-3, "Peak Adam learning rate (cosine-decayed to 0).")
_SOLVER_STEPS = flags.DEFINE_integer("solver_steps", 15, "DPM-Solver steps (vpsde only).")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/diffusion_<model>_<dataset>).")


def main(argv):
    del argv
    cli.positive(steps=_STEPS.value, batch=_BATCH.value, width=_WIDTH.value, lr=_LR.value,
                 solver_steps=_SOLVER_STEPS.value)
    workdir = _WORKDIR.value or os.path.join("runs", f"diffusion_{_MODEL.value}_{_DATASET.value}")
    os.makedirs(workdir, exist_ok=True)
    sample_fn = toy.DATASETS[_DATASET.value]
    k_fit, k_sample, k_data = jax.random.split(jax.random.PRNGKey(_SEED.value), 3)
    t0 = time.time()
    make_eps, params, losses = toy_fit.fit(k_fit, _MODEL.value, sample_fn, steps=_STEPS.value, batch=_BATCH.value,
                                           width=_WIDTH.value, lr=_LR.value)
    train_s = time.time() - t0
    samples = toy_fit.sample(k_sample, _MODEL.value, make_eps(params), 2000, solver_steps=_SOLVER_STEPS.value)
    data = sample_fn(k_data, 2000)
    summary = {"model": _MODEL.value, "dataset": _DATASET.value, "steps": _STEPS.value, "train_seconds": train_s,
               "final_loss": losses[-1]}
    if _DATASET.value == "8gaussians":
        summary.update(toy.mode_statistics(samples))
    logging.info("summary: %s", dumps(summary))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(data[:, 0], data[:, 1], s=3, alpha=0.3, label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.5, label=f"{_MODEL.value} samples")
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.legend(loc="upper right")
    ax.set_title(f"{_MODEL.value} on {_DATASET.value} ({_STEPS.value} steps)")
    png = os.path.join(workdir, "samples.png")
    fig.savefig(png, dpi=100)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        f.write(dumps(summary, indent=2))
    print(f"wrote {png} and summary.json: {dumps(summary)}")


if __name__ == "__main__":
    cli.run(main)
