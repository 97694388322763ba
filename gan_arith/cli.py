"""The command-line shell of every experiment: `--config.key=value` overrides, `--workdir`, the XLA
compilation cache, CPU scaling, and a user's mistake ended as one line.

    if __name__ == "__main__":
        run_experiment(get_config, main, "experiment_name")
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import ml_collections

from gan_arith.config import check_field_names, field, scale_for_host
from gan_arith.errors import InputError
from gan_arith.train.checkpoint import CONFIG_FILE


def command_line_fields(argv: list[str], flag: str = "config") -> frozenset[str]:
    """Dotted config fields set explicitly on the command line (`--config.a.b=v` or `--config.a.b v`)."""
    prefix = f"--{flag}."
    return frozenset(arg[len(prefix):].split("=", 1)[0] for arg in argv if arg.startswith(prefix))


def default_compilation_cache() -> str:
    """$GAN_ARITH_COMPILATION_CACHE, else gan_arith/xla in the user's cache directory (XDG)."""
    if "GAN_ARITH_COMPILATION_CACHE" in os.environ:
        return os.environ["GAN_ARITH_COMPILATION_CACHE"]
    return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gan_arith" / "xla")


def use_compilation_cache(directory: str) -> None:
    """Keep XLA executables in `directory` ('' = off), so a resumed run or the next experiment skips compiling.

    A directory JAX was already given (JAX_COMPILATION_CACHE_DIR) wins. JAX keys each entry by the
    computation, the devices and the jax/XLA versions, so a stale entry is never used.
    """
    if directory and not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", directory)


def check_given_runs(config: ml_collections.ConfigDict, fields: frozenset[str], defaults: ml_collections.ConfigDict) -> None:
    """Raise an InputError for a trained-run field (`run`, `dcgan.run`, ...) among the command-line `fields`
    whose directory holds no training run: the experiment would silently train a new one there (minutes
    to hours) when the user meant an existing run — a typo, or the wrong folder. Only the default run
    directory (`defaults`) is trained on demand."""
    for name in sorted(fields):
        if name.split(".")[-1] != "run":
            continue
        run, default = field(config, name), field(defaults, name)
        if not (Path(run) / CONFIG_FILE).is_file():
            raise InputError(
                f"--config.{name}={run}: no training run there ({CONFIG_FILE} missing). Give the --workdir of a "
                f"training command, or leave --config.{name} out to use the default {default} (trained first "
                f"if it holds no run)"
            )


@contextlib.contextmanager
def _input_errors_as_one_line(program: str) -> Iterator[None]:
    """End the program with an InputError's message as one line; anything else is a bug, whose traceback finds it."""
    try:
        yield
    except InputError as error:
        raise SystemExit(f"{program}: {error}") from None


def run_experiment(get_config: Callable[[], ml_collections.ConfigDict], main: Callable[..., Any], name: str) -> None:
    """Command-line entry for an experiment module: `--config.key=value` overrides and `--workdir`.

    `main(config, workdir)` receives the final config (CPU scaling applied and printed). An `InputError`
    (a mistake in the user's options, files or data) ends the program with its message as one line.
    """
    from absl import app, flags, logging
    from ml_collections import config_flags

    config = get_config()
    given = command_line_fields(sys.argv)
    with _input_errors_as_one_line(name):  # before absl parses them: it would fail on an unknown field with a long traceback
        check_field_names(config, given)
    config_flags.DEFINE_config_dict("config", config, "Experiment config; override with --config.key=value.")
    flags.DEFINE_string("workdir", str(Path("workdirs") / name), "Where checkpoints, logs and figures go.")
    flags.DEFINE_string(
        "compilation_cache", default_compilation_cache(),
        "Directory of compiled XLA executables reused across runs ('' turns it off).",
    )

    def _main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")

        logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
        use_compilation_cache(flags.FLAGS.compilation_cache)
        config = flags.FLAGS.config
        with _input_errors_as_one_line(name):
            check_given_runs(config, given, get_config())
        backend = jax.default_backend()
        changes = scale_for_host(config, backend, keep=given)
        if changes:
            print(
                f"No accelerator found ({backend}): scaled the run down so it finishes in minutes "
                f"(fields you set on the command line are kept; --config.scale_for_cpu=False runs the "
                f"seed's full configuration):",
                file=sys.stderr,
            )
            for line in changes:
                print(f"  {line}", file=sys.stderr)
        with _input_errors_as_one_line(name):
            main(config, flags.FLAGS.workdir)

    app.run(_main)
