"""The one config system: ml_collections `get_config()` per experiment, `--config.key=value` overrides.

`base_config(kind)` holds every field the library reads, with the seeds' values; experiment modules
change a few fields and call `gan_arith.cli.run_experiment`. On a host without an accelerator, `config.cpu`
(a partial config) is merged in, so the default run finishes in minutes; the changes are printed.
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping, Sequence

import ml_collections

from gan_arith.errors import InputError
from gan_arith.models.fast import IMPLS
from gan_arith.models.layers import CONV_TRANSPOSE_IMPLS, num_doublings


CONV_FUSION_CHOICES = ("auto", "on", "off")
SCHEDULES = ("constant", "cosine")  # learning-rate schedules (train/steps.py learning_rate_schedule)
COMPUTE_DTYPES = ("float32", "bfloat16")  # model.dtype (train/steps.py model_dtype)
MODEL_CHOICES = {
    "kind": ("dcgan", "vae", "ae"), "dtype": COMPUTE_DTYPES, "conv_transpose": CONV_TRANSPOSE_IMPLS,
    "discriminator_padding": ("same", "symmetric"), "impl": IMPLS,
}


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
            # DCGAN lowering, same parameters and function: 'plain' (models/dcgan.py), 'fast' (models/fast/,
            # for CUDA GPUs) or 'auto' (fast on CUDA GPUs, plain elsewhere)
            "impl": "auto",
            "dropout_rate": 0.4,
            # DCGAN discriminator's stride-2 layers: 'same' (Keras, the seed) or 'symmetric' (PyTorch's
            # padding=2, a different function); impl 'fast' runs both padded symmetrically (models/fast/dcgan.py)
            "discriminator_padding": "same",
            "beta": 1.0,  # VAE: weight of the KL term
            # VAE: filters of the encoder's stride-2 convs, one per doubling from 5×5 to image_size, mirrored
            # by the decoder, whose 5×5 map has the last one's channels; (): the seed's 128-64-32-16, shortened
            # from the front below 80×80 (models/vae.py)
            "vae_filters": (),
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
    ("model", "impl"): "auto",  # how the models are lowered, not what they compute
    ("conv_fusion",): "auto",  # how the steps compile, not what they compute
    ("ema_decay",): 0.0,
    ("r1_gamma",): 0.0,
    ("optimizer", "discriminator_learning_rate"): 0.0,
    ("optimizer", "schedule"): "constant",
    ("model", "vae_filters"): (),
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



def check_model_config(config: ml_collections.ConfigDict) -> None:
    """Raise an InputError naming the `config.model` field the models cannot be built with (their own
    checks are ValueErrors raised while tracing, which read as bugs)."""
    check_ranges(config, choices={f"model.{name}": allowed for name, allowed in MODEL_CHOICES.items()})
    model = config.model
    if model.kind == "vae" and (isinstance(model.beta, bool) or not isinstance(model.beta, (int, float)) or model.beta < 0):
        raise InputError(f"config.model.beta (the KL term's weight) must be a number >= 0, got {model.beta!r}")
    if model.kind == "vae" and model.vae_filters:
        _check_vae_filters(model.vae_filters, model.image_size)
    if model.kind == "ae":
        if model.image_size % 8:
            raise InputError(f"config.model.image_size must be a multiple of 8 for the accordion autoencoder, got {model.image_size}")
        return
    try:
        num_doublings(model.image_size, 5)
    except ValueError as error:
        raise InputError(f"config.model.{error}") from None


def _check_vae_filters(filters: Any, image_size: int) -> None:
    """An InputError unless `filters` holds one positive integer per doubling from 5×5 to `image_size`."""
    try:
        doublings = num_doublings(image_size, 5)
    except ValueError as error:
        raise InputError(f"config.model.{error}") from None
    valid = isinstance(filters, (tuple, list)) and all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in filters)
    if not valid or len(filters) != doublings:
        raise InputError(
            f"config.model.vae_filters must be {doublings} positive integers at image_size {image_size} "
            f"(one per stride-2 conv), or () for the seed's; got {filters!r} (set it along with the image size)"
        )


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
