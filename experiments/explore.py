"""An interactive latent explorer in the browser, on a trained GAN or VAE run.

    python -m experiments.explore --config.run=workdirs/dcgan_celeba [--config.port=8000] [--config.host=127.0.0.1]

Starts a local web server (127.0.0.1 unless --config.host says otherwise; --config.port=0 takes a
free port) and prints its URL; the page works offline (every asset is served from the package).
Needs the `explore` extra (`pip install -e ".[explore]"`) and a finished training run in
--config.run (dcgan or vae; it is not trained here). The page shows a grid of generated faces (GAN:
the numbered grid of `vector_arithmetic_gan --config.seed=S`) or encoded real test faces (VAE);
click faces into concepts, type an expression (`smiling_woman - neutral_woman + neutral_man`), move
sliders along attribute directions, and interpolate between two faces. Faces show the readings of
the attribute classifier and the judge where they are saved for the run's store
(--config.classifier_dir, --config.judge_dir, keyed by --config.classifier_steps/--config.judge_steps
as the other experiments train them); the GAN's directions need the classifier.
The page opens on grid --config.seed; "fresh grid" draws the next.
Runtime (2 shared CPU cores, DCGAN): ready in seconds (loading the run, compiling, the first grid of
100 faces: 2 s at the CPU default's 40px, 7 s at the seed's 80px); then one face renders in 1 ms
(40px) / 40 ms (80px), an expression's concept averages and result in 7 / 150 ms. GPU: not measured.
Expected result: the page at the printed URL; "copy command" gives the
`python -m experiments.vector_arithmetic_gan ... --config.concepts=...` line (GAN: indices into the
numbered grid of that seed) or the `vector_arithmetic_vae ... --config.concepts=...` line (VAE: store
rows) that reproduces the result from the command line.
"""

import ml_collections

from gan_arith.cli import run_experiment
from gan_arith.config import analysis_config, check_ranges
from gan_arith.errors import InputError


def get_config() -> ml_collections.ConfigDict:
    config = analysis_config(judge=True)  # the classifier's and judge's steps select which saved ones are shown
    config.run = "workdirs/dcgan_celeba"  # a finished dcgan or vae training run
    config.host = "127.0.0.1"
    config.port = 8000  # 0: a free port
    config.grid_size = 100  # faces per grid (the GAN experiment's default, so its indices match)
    config.batches = (1, 4, 16)  # generator batch shapes: each call pads to the smallest that holds it
    config.partition = "test"  # VAE: the real faces of the grids
    config.direction_faces = 2000  # faces the attribute directions are fitted on
    config.interpolation_steps = 8
    return config


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    del workdir  # the explorer writes nothing
    check_ranges(config, positive=("grid_size", "direction_faces", "interpolation_steps", "classifier_steps",
                                   "judge_steps"), at_least={"port": 0, "seed": 0},
                 choices={"partition": ("train", "valid", "test")})
    try:  # the optional extra: the rest of the project runs without it
        from gan_arith.explore.explorer import Explorer, Settings
        from gan_arith.explore.server import serve
    except ModuleNotFoundError as error:
        raise InputError(f"the explorer needs the explore extra ({error}): pip install -e \".[explore]\"") from None

    settings = Settings(
        grid_size=config.grid_size, first_grid=config.seed, batches=tuple(config.batches), partition=config.partition,
        direction_faces=config.direction_faces, interpolation_steps=config.interpolation_steps,
        classifier_dir=config.classifier_dir, classifier_steps=config.classifier_steps, judge_dir=config.judge_dir,
        judge_steps=config.judge_steps,
    )
    serve(Explorer.open(config.run, settings), config.host, config.port)


if __name__ == "__main__":
    run_experiment(get_config, main, "explore")
