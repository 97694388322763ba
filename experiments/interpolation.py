"""Linear and spherical interpolation between latent points, for the GAN and the VAE.

    python -m experiments.interpolation [--workdir=workdirs/interpolation] [--config.kinds=dcgan,vae] [--config.key=value ...]

Paths run through --config.num_points points (GAN: prior draws; VAE: encoded test faces), with
--config.steps_per_segment images per segment, once straight (lerp) and once along the great
circle (slerp). Needs trained runs in --config.dcgan.run / --config.vae.run; a missing one is
trained first (CPU-scaled: about 10 minutes for the GAN, fewer for the VAE).
Runtime (CPU, trained runs): about 20 s. GPU: not measured.
Expected result: figures/interpolation_<kind>.png, a lerp row over a slerp row of faces morphing
from point to point; summary.json (an entry per kind, kept when a later run covers other kinds) has
the latent norm at every step: slerp stays near the endpoints' norms (about sqrt(D) for prior
draws) while lerp dips between them.
"""

import json
import sys
from pathlib import Path

import ml_collections
import numpy as np

from experiments import dcgan_celeba, vae_celeba
from gan_arith import artifacts, figures
from gan_arith.files import write_json
from gan_arith.cli import run_experiment
from gan_arith.config import analysis_config, check_ranges, selected_kinds
from gan_arith.latent import sweeps


def get_config() -> ml_collections.ConfigDict:
    config = analysis_config(classifier=False)
    config.kinds = "dcgan,vae"
    # Training workdirs (trained first if they have no finished run) and what to train there.
    config.dcgan = ml_collections.ConfigDict({"run": "workdirs/dcgan_celeba", "train": dcgan_celeba.get_config()})
    config.vae = ml_collections.ConfigDict({"run": "workdirs/vae_celeba", "train": vae_celeba.get_config()})
    config.num_points = 3
    config.steps_per_segment = 6
    return config


def _previous_summary(path: Path) -> dict:
    try:
        previous = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return previous if isinstance(previous, dict) else {}


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    check_ranges(config, positive=("steps_per_segment",), at_least={"num_points": 2})
    runs = {kind: artifacts.trained_run(config, kind) for kind in selected_kinds(config)}  # before any figure is replaced
    summary_path = Path(workdir) / "summary.json"
    # A rerun over fewer kinds keeps the other kinds' entries, so the summary describes every figure there.
    summary = _previous_summary(summary_path)
    for kind, run in runs.items():
        points = sweeps.endpoint_latents(run, artifacts.run_store(run), config.num_points, config.seed)
        strips = sweeps.interpolation_strips(run, points, config.steps_per_segment)
        ts = np.linspace(0, config.num_points - 1, len(strips["slerp"]["norms"]))
        path = figures.plot_interpolation(
            {method: strip["images"] for method, strip in strips.items()}, Path(workdir) / "figures" / f"interpolation_{kind}.png",
            ts=ts, title=f"{kind}: lerp vs slerp through {config.num_points} points",
        )
        summary[kind] = {
            "run": str(run.workdir), "figure": path, "t": ts.tolist(), "prior_typical_norm": float(np.sqrt(run.latent_dim)),
            "norms": {method: strip["norms"].tolist() for method, strip in strips.items()},
        }
        print(f"{kind}: latent norm along the path min/max: " + "; ".join(
            f"{method} {min(norms):.2f}/{max(norms):.2f}" for method, norms in summary[kind]["norms"].items()
        ) + f" (sqrt(D) = {np.sqrt(run.latent_dim):.2f}); {path}", file=sys.stderr)
    write_json(summary, summary_path)


if __name__ == "__main__":
    run_experiment(get_config, main, "interpolation")
