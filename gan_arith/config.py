"""The one config system: ml_collections `get_config()` per experiment, `--config.key=value` overrides.

`base_config(kind)` holds every field the library reads, with the seeds' values; experiment modules
change a few fields and call `run_experiment`. On a host without an accelerator, `config.cpu`
(a partial config) is merged in, so the default run finishes in minutes; the changes are printed.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import ml_collections

from gan_arith.errors import InputError


CONV_FUSION_CHOICES = ("auto", "on", "off")
SCHEDULES = ("constant", "cosine")  # learning-rate schedules (train/steps.py learning_rate_schedule)


def base_config(kind: str) -> ml_collections.ConfigDict:
    """Defaults shared by every run; `kind` is 'dcgan', 'vae' or 'ae'."""
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict(
        {
            "kind": kind,
            "latent_dim": 100,
            "width": 128,
            "image_size": 80,
            "dtype": "float32",  # compute dtype ('bfloat16' for speed); parameters are always float32
            "conv_transpose": "phase",  # 'dilated' is plain lax.conv_transpose, the slow reference
            "dropout_rate": 0.4,
            # DCGAN discriminator's stride-2 layers: 'same' (Keras, the seed) or 'symmetric' (PyTorch's
            # padding=2, a different function); on CUDA both run symmetric padding (models/dcgan.py)
            "discriminator_padding": "same",
            "beta": 1.0,  # VAE: weight of the KL term
        }
    )
    # discriminator_learning_rate: the GAN's discriminator's own rate (0: learning_rate, as in the seed);
    # schedule: 'constant' (the seeds') or 'cosine' (both rates decayed to 0 over the run's steps)
    config.optimizer = ml_collections.ConfigDict(
        {"learning_rate": 2e-4, "discriminator_learning_rate": 0.0, "schedule": "constant", "b1": 0.5, "b2": 0.999,
         "eps": 1e-7}
    )
    config.data = ml_collections.ConfigDict(
        {
            "store": "",  # an explicit prepared store wins over everything below
            "default_store": "data/celeba_store",  # used when it exists (what `prepare` writes by default)
            "celeba_dir": "",  # raw CelebA (official layout) to prepare first; else $GAN_ARITH_CELEBA
            "synthetic_dir": "data/synthetic",  # built-in procedural faces when no CelebA is found
            "synthetic_faces": 20000,
            "partition": "train",
            "query": "",  # attribute selection, e.g. "Smiling & ~Male"
            "max_faces": 0,  # 0: all selected faces
            "pipeline": "auto",  # 'device' (uint8 on device, no TF), 'tfdata', or 'auto' (device if it fits on every host)
            "prepare_processes": 0,  # 0: all CPU cores
        }
    )
    config.seed = 0
    # GAN: decay of the generator's weight average that samples, evaluation and the latent tools use
    # (0: none, the seed's recipe; train/steps.py GANSteps)
    config.ema_decay = 0.0
    # GAN: weight γ of the R1 penalty γ/2·E|∇x D(x)|² on real faces in the discriminator's loss (0: none, the seed's)
    config.r1_gamma = 0.0
    config.batch_size = 128
    config.num_epochs = 100
    config.eval_every_epochs = 10
    # XLA fusing convolutions with the elementwise operations after them into cuDNN graphs
    # (train/parallel.py): 'on', 'off', or 'auto': on where measured faster (the DCGAN, and the VAE
    # in bfloat16, on CUDA GPUs, jax >= 0.11)
    config.conv_fusion = "auto"
    config.steps_per_dispatch = 0  # train steps fused in one jitted lax.scan (logged as their mean); 0: 1 on CPU, 10 elsewhere
    config.num_samples = 64  # fixed latent batch for the sample grid
    config.keep_checkpoints = 3
    config.best_metric = "loss"  # an eval metric name; lower is better unless best_mode='max'
    config.best_mode = "min"
    # best_metric="frechet" (GAN runs): Fréchet distance of num_fd_samples generated faces from held-out
    # real ones in the feature space of the attribute classifier trained (once) under classifier_dir.
    config.num_fd_samples = 1000
    config.classifier_dir = "workdirs/attribute_classifier"
    config.classifier_steps = 1500
    config.tensorboard = True
    config.scale_for_cpu = True
    config.cpu = ml_collections.ConfigDict()  # partial config merged in when no accelerator is present
    return config


# Fields added to `base_config` after runs were saved, with the value those runs were trained with
# (or, for a field that does not change what a run computes, today's default): a saved config lacking
# one means that value (`with_added_fields`), so old runs load and resume.
ADDED_FIELDS: dict[tuple[str, ...], Any] = {
    ("model", "discriminator_padding"): "same",
    ("conv_fusion",): "auto",  # how the steps compile, not what they compute
    ("ema_decay",): 0.0,
    ("r1_gamma",): 0.0,
    ("optimizer", "discriminator_learning_rate"): 0.0,
    ("optimizer", "schedule"): "constant",
}
# Fields no longer read, dropped from saved configs so those runs still resume: the experimental
# `model.fused_discriminator` computed the plain discriminator's function.
REMOVED_FIELDS: tuple[tuple[str, ...], ...] = (("model", "fused_discriminator"),)


def with_added_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config` (a saved run's) with every `ADDED_FIELDS` entry it lacks set to the value it implied
    and its `REMOVED_FIELDS` dropped."""
    with config.unlocked():
        for (*parents, name), value in ADDED_FIELDS.items():
            node = _parent(config, parents)
            if name not in node:
                node[name] = value
        for *parents, name in REMOVED_FIELDS:
            node = _parent(config, parents)
            if name in node:
                del node[name]
    return config


def _parent(config: ml_collections.ConfigDict, keys: Sequence[str]) -> ml_collections.ConfigDict:
    return field(config, ".".join(keys)) if keys else config


# Fields a training run needs positive (checked before it writes anything).
POSITIVE_FIELDS = (  # integers; the learning rate is checked on its own
    "batch_size", "num_epochs", "eval_every_epochs", "num_samples", "keep_checkpoints",
    "model.width", "model.latent_dim", "model.image_size",
)


def field(config: ml_collections.ConfigDict, name: str) -> Any:
    """The value of the dotted field `name` ("model.width") of `config`."""
    for key in name.split("."):
        config = config[key]
    return config


def check_train_config(config: ml_collections.ConfigDict) -> None:
    """Raise an InputError naming the first of `POSITIVE_FIELDS` that is not a positive integer, a learning
    rate that is not a positive number, an unknown `conv_fusion`, or an odd GAN batch (half real, half
    generated faces)."""
    check_ranges(config, positive=POSITIVE_FIELDS, choices={"conv_fusion": CONV_FUSION_CHOICES, "optimizer.schedule": SCHEDULES})
    learning_rate = config.optimizer.learning_rate
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise InputError(f"config.optimizer.learning_rate must be a positive number, got {learning_rate!r}")
    rate = config.optimizer.discriminator_learning_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
        raise InputError(f"config.optimizer.discriminator_learning_rate must be a number >= 0 (0: learning_rate), got {rate!r}")
    r1_gamma = config.r1_gamma
    if isinstance(r1_gamma, bool) or not isinstance(r1_gamma, (int, float)) or r1_gamma < 0:
        raise InputError(f"config.r1_gamma must be a number >= 0 (0: no R1 penalty), got {r1_gamma!r}")
    ema_decay = config.ema_decay
    if isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not 0 <= ema_decay < 1:
        raise InputError(f"config.ema_decay must be a number in [0, 1) (0: no weight average), got {ema_decay!r}")
    if config.model.kind == "dcgan" and config.batch_size % 2:
        raise InputError(f"config.batch_size must be even for the GAN (half real, half generated faces), got {config.batch_size}")


def check_ranges(
    config: ml_collections.ConfigDict, *, positive: Sequence[str] = (), at_least: Mapping[str, int] | None = None,
    fractions: Sequence[str] = (), open_fractions: Sequence[str] = (), choices: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Raise an InputError naming the first field (dotted name) out of its range: `positive` integers
    >= 1, `at_least` integers >= their minimum, `fractions` in (0, 1], `open_fractions` in (0, 1),
    `choices` one of the listed strings. Experiments call it first, so a bad number fails before a
    model is loaded or trained."""
    for name, minimum in {**dict.fromkeys(positive, 1), **(at_least or {})}.items():
        value = field(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise InputError(f"config.{name} must be {wanted}, got {value!r}")
    for names, closed in ((fractions, True), (open_fractions, False)):
        for name in names:
            value = field(config, name)
            inside = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value and (
                value <= 1 if closed else value < 1
            )
            if not inside:
                raise InputError(f"config.{name} must be in (0, 1{']' if closed else ')'}, got {value!r}")
    for name, allowed in (choices or {}).items():
        if field(config, name) not in allowed:
            raise InputError(f"config.{name} must be one of {', '.join(allowed)}, got {field(config, name)!r}")


def analysis_config(
    run: str = "", train: ml_collections.ConfigDict | None = None, *, classifier: bool = True,
    judge: bool = False, cpu: dict[str, Any] | None = None,
) -> ml_collections.ConfigDict:
    """The fields every experiment on a trained model starts from.

    `run` is a training workdir, trained first with `train` when it holds no finished run
    (`gan_arith.artifacts.load_or_train`); `classifier` adds where the attribute classifier is kept
    and how long it trains (once per face store); `judge` the same for the independent judge that
    reads arithmetic success rates beside it (evaluation/judge.py); `cpu` is the experiment's own
    CPU scaling.
    """
    config = ml_collections.ConfigDict()
    if run:
        config.run = run
        config.train = train
    cpu_steps: dict[str, Any] = {}
    if classifier:
        config.classifier_dir = "workdirs/attribute_classifier"
        config.classifier_steps = 1500
        cpu_steps["classifier_steps"] = 300
    if judge:
        config.judge_dir = "workdirs/attribute_judge"
        config.judge_steps = 1500
        # A VGG stack without normalisation learns the smile late: on CelebA at 40px its Smiling test
        # accuracy is 0.63 after 300 steps, 0.82 after 600 (the classifier: 0.83 after 300).
        cpu_steps["judge_steps"] = 600
    config.seed = 0
    config.scale_for_cpu = True
    config.cpu = ml_collections.ConfigDict({**cpu_steps, **(cpu or {})})
    return config


def selected_kinds(config: ml_collections.ConfigDict) -> list[str]:
    """`config.kinds` ("dcgan,vae") as a list, each checked to name one of the experiment's model sections."""
    kinds = [kind.strip() for kind in config.kinds.split(",") if kind.strip()]
    known = [kind for kind in ("dcgan", "vae", "ae") if kind in config]
    if not kinds or any(kind not in known for kind in kinds):
        raise InputError(f"config.kinds must be a comma-separated subset of {','.join(known)}, got {config.kinds!r}")
    return kinds


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: ml_collections.ConfigDict, prefix: str = "", keep: frozenset[str] = frozenset()
) -> list[str]:
    """Merge the nested `overrides` into `config` in place, except the dotted names in `keep`.

    Returns 'key: old -> new' lines for what changed.
    """
    changes = []
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if key not in config:
            raise KeyError(f"override {name!r} names no config field")
        if name in keep:
            continue
        if isinstance(value, ml_collections.ConfigDict):
            changes += apply_overrides(config[key], value, f"{name}.", keep)
        elif config[key] != value:
            changes.append(f"{name}: {config[key]} -> {value}")
            config[key] = value
    return changes


def scale_for_host(config: ml_collections.ConfigDict, backend: str, keep: frozenset[str] = frozenset()) -> list[str]:
    """Apply `config.cpu` when running on CPU (unless `scale_for_cpu` is off); return what changed.

    Fields named in `keep` (dotted, e.g. the user's own `--config.num_epochs`) are left as they are.
    """
    if backend != "cpu" or not config.scale_for_cpu or not config.cpu:
        return []
    with config.unlocked():
        return apply_overrides(config, config.cpu, keep=keep)


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
    import jax

    if directory and not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", directory)


def field_names(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every dotted field name of `config`, nested ConfigDicts included (`model`, `model.width`, ...)."""
    names = []
    for key, value in config.items():
        names.append(f"{prefix}{key}")
        if isinstance(value, ml_collections.ConfigDict):
            names += field_names(value, f"{prefix}{key}.")
    return names


def check_field_names(config: ml_collections.ConfigDict, fields: frozenset[str]) -> None:
    """Raise an InputError listing the `fields` (dotted) that `config` lacks, with the closest real names."""
    known = field_names(config)
    unknown = sorted(fields - set(known))
    if unknown:
        hints = [f"--config.{name}" + (f" (did you mean --config.{close[0]}?)" if (close := difflib.get_close_matches(name, known, 1)) else "")
                 for name in unknown]
        raise InputError(f"unknown config field(s): {', '.join(hints)}")


def check_given_runs(config: ml_collections.ConfigDict, fields: frozenset[str], defaults: ml_collections.ConfigDict) -> None:
    """Raise an InputError for a trained-run field (`run`, `dcgan.run`, ...) among the command-line `fields`
    whose directory holds no training run: the experiment would silently train a new one there (minutes
    to hours) when the user meant an existing run — a typo, or the wrong folder. Only the default run
    directory (`defaults`) is trained on demand."""
    from gan_arith.train.checkpoint import CONFIG_FILE

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
        import jax

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
