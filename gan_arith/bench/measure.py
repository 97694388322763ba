"""Speed benchmark of the train steps and the input paths: ``python -m gan_arith.bench``.

    python -m gan_arith.bench [--size cpu|seed] [--json PATH] [--models dcgan,vae]
                              [--dtypes float32,bfloat16] [--fuse K] [--fused-rows all|MODEL/DTYPE,...]
                              [--conv-transpose phase|dilated] [--discriminator-padding same|symmetric]
                              [--conv-fusion auto|on|off] [--skip input,tfdata,conv-transpose] [--profile DIR]

For the seed's DCGAN step and the VAE step, in float32 and bfloat16 compute, on all devices (a
data-parallel mesh): compile time, steady-state steps/s and images/s (median of several timed
windows after a warm-up call, synchronised with ``block_until_ready``), the model FLOPs per step
(``gan_arith.bench.flops``: counted from the layer shapes, next to XLA's own count), achieved FLOP/s
and the fraction of the device's peak. Each step is timed dispatched one call per step and, where
asked, fused K steps per call in one jitted ``lax.scan`` (``compile_train_steps``). The training
batches come from the device-resident input path (``DeviceFaces``: on-device shuffle and gather),
as in training. Then the input paths' own throughput (device-resident and tf.data over a store,
both moving uint8 faces to the device) against the fastest step's consumption, and the
generator's forward+backward with the phase and the dilated transposed convolution.
``--profile DIR`` also records a ``jax.profiler`` trace of a few timed one-step calls per row
(DIR/MODEL_DTYPE/plugins/profile/*/: xplane.pb for TensorBoard/XProf, trace.json.gz for Perfetto)
and, on GPUs, prints where each step's kernel time goes (``gan_arith.bench.trace``: convolutions,
matrix multiplications, the rest, and the largest kernels).

``--size seed`` is the seed's exact step (batch 128: 64 real + 64 generated faces for the
discriminator, 128 latents for the generator; 80×80, width 128, latent 100; the VAE with its
256-d latent). ``--size cpu`` (the default on CPU) shrinks it to 40×40, width 32, batch 32 so
that the whole run takes under a minute on two cores (mostly XLA compiles); it prints what it
changed. On CPU the fused comparison runs for one row with k=2 only: XLA:CPU runs convolution
gradients inside a loop body 5-9x slower (jax-ml/jax#12868). Faces are the built-in synthetic
ones, rendered into a temporary store. docs/benchmarks.md records the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gan_arith.config import CONV_FUSION_CHOICES, base_config
from gan_arith.data.device import DeviceFaces
from gan_arith.data.store import FaceStore
from gan_arith.data.synthetic import write_synthetic_store
from gan_arith.bench.flops import train_step_flops, xla_flops
from gan_arith.bench.report import format_report, judge_targets
from gan_arith.bench.trace import kernel_time
from gan_arith.files import write_json
from gan_arith.models.fast import dcgan_modules
from gan_arith.models.layers import CONV_TRANSPOSE_IMPLS
from gan_arith.train import parallel
from gan_arith.train.state import TrainState
from gan_arith.train.steps import Steps, build_steps

MODELS = ("dcgan", "vae")
DTYPES = ("float32", "bfloat16")
LATENT_DIM = {"dcgan": 100, "vae": 256}  # the seeds' latents; cheap, so never shrunk
SECTIONS = ("input", "tfdata", "conv-transpose")

# Dense peak TFLOP/s per device (no sparsity) at each compute dtype, by a lower-case substring of
# jax's device_kind, first match wins. "float32" is the peak at JAX's default matmul precision:
# TF32 tensor cores on A100/H100/H200, single bfloat16 passes on TPU.
PEAK_TFLOPS: tuple[tuple[str, str, float, float], ...] = (
    # (device_kind substring, name, bfloat16, float32 at default precision)
    ("h100 pcie", "NVIDIA H100 PCIe", 756.0, 378.0),
    ("h100 nvl", "NVIDIA H100 NVL", 835.0, 418.0),
    ("h100", "NVIDIA H100 SXM", 989.0, 495.0),
    ("h200", "NVIDIA H200", 989.0, 495.0),
    ("a100", "NVIDIA A100", 312.0, 156.0),
    ("tpu v4", "TPU v4", 275.0, 275.0),
    ("tpu v5 lite", "TPU v5e", 197.0, 197.0),
    ("tpu v5", "TPU v5p", 459.0, 459.0),
    ("tpu v6 lite", "TPU v6e", 918.0, 918.0),
)

@dataclasses.dataclass(frozen=True)
class Size:
    """How big the benchmarked step is, and how long it is timed."""

    name: str
    batch_size: int
    image_size: int
    width: int
    num_faces: int  # synthetic faces rendered for the input paths
    windows: int  # timed windows per measurement (the median is reported)
    window_s: float  # each window runs whole calls for at least about this long

    @property
    def is_seed_step(self) -> bool:
        seed = SIZES["seed"]
        return (self.batch_size, self.image_size, self.width) == (seed.batch_size, seed.image_size, seed.width)

    def changes(self) -> str:
        seed = SIZES["seed"]
        diffs = [
            f"{name} {getattr(self, name)} (seed {getattr(seed, name)})"
            for name in ("image_size", "width", "batch_size")
            if getattr(self, name) != getattr(seed, name)
        ]
        return ", ".join(diffs) if diffs else "none: the seed's exact step"


SIZES = {
    "seed": Size("seed", batch_size=128, image_size=80, width=128, num_faces=8192, windows=5, window_s=1.0),
    "cpu": Size("cpu", batch_size=32, image_size=40, width=32, num_faces=1024, windows=3, window_s=0.3),
}


def peak_tflops(device_kind: str, dtype: str) -> tuple[str, float] | None:
    """(name, dense peak TFLOP/s per device) for a known device kind and compute dtype, else None."""
    kind = device_kind.lower()
    for pattern, name, bf16, f32 in PEAK_TFLOPS:
        if pattern in kind:
            return name, bf16 if dtype == "bfloat16" else f32
    return None


def step_config(
    model: str, dtype: str, size: Size, conv_transpose: str = "phase", discriminator_padding: str = "same",
    conv_fusion: str = "auto",
) -> ml_collections.ConfigDict:
    """The library's defaults (the seed's optimizer: Adam 2e-4, β1 0.5) with the model at ``size``."""
    config = base_config(model)
    config.model.update(
        latent_dim=LATENT_DIM[model], width=size.width, image_size=size.image_size, dtype=dtype,
        conv_transpose=conv_transpose, discriminator_padding=discriminator_padding,
    )
    config.conv_fusion = conv_fusion
    return config


def time_calls(call: Callable[[int], Any], *, windows: int, window_s: float) -> list[float]:
    """Seconds per call in each of ``windows`` timed windows, after two untimed calls.

    ``call(i)`` runs call number i and returns something to wait on. The first call warms up
    (it may compile); the second sets how many whole calls each window runs to last about
    ``window_s`` (at least one). Each window waits for its last call's results before the clock
    stops.
    """
    jax.block_until_ready(call(0))
    start = time.perf_counter()
    jax.block_until_ready(call(1))
    per_window = max(1, round(window_s / max(time.perf_counter() - start, 1e-6)))
    seconds, index = [], 2
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(per_window):
            out = call(index)
            index += 1
        jax.block_until_ready(out)
        seconds.append((time.perf_counter() - start) / per_window)
    return seconds


_T0 = time.perf_counter()


def _log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:5.1f}s] {message}", file=sys.stderr, flush=True)


class _Feed:
    """Calls' batches from a DeviceFaces, epoch after epoch: one batch per call, or a [k, B] stack."""

    def __init__(self, data: DeviceFaces, steps_per_call: int):
        self.chunks = data.steps_per_epoch // steps_per_call
        if self.chunks == 0:
            raise ValueError(
                f"{data.num_examples} faces make {data.steps_per_epoch} batches of {data.batch_size}, fewer than "
                f"the {steps_per_call} steps fused per call: raise --num-faces"
            )
        self.data, self.k = data, steps_per_call

    def __call__(self, call: int) -> dict[str, jax.Array]:
        epoch, chunk = divmod(call, self.chunks)
        if self.k == 1:
            return self.data.batch(epoch, chunk)
        return self.data.stacked_batches(epoch, chunk * self.k, self.k)


def initial_state(steps: Steps, image_size: int) -> TrainState:
    """``steps.init`` at key 0, fetched to the host.

    The initial state is not what is measured, so its computation is compiled without backend
    optimisation: on CPU that compiles several times faster, with bit-identical values.
    """
    init = jax.jit(steps.init, static_argnums=1).lower(jax.random.key(0), image_size)
    compiled = init.compile(compiler_options={"xla_backend_optimization_level": 0})
    return jax.device_get(compiled(jax.random.key(0)))


def per_step_function(steps: Steps, mesh: jax.sharding.Mesh, compiler_options: dict[str, Any] | None = None) -> Callable:
    """One step per call, the state donated; keys as ``fuse_steps`` draws them, so both paths train alike."""

    def step(state: TrainState, batch: dict, rng: jax.Array):
        return steps.train_step(state, batch, jax.random.fold_in(rng, state.step))

    replicated = parallel.replicated(mesh)
    return jax.jit(
        step,
        in_shardings=(replicated, parallel.batch_sharding(mesh), replicated),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
        compiler_options=compiler_options,
    )


def abstract_step_inputs(steps: Steps, mesh: jax.sharding.Mesh, size: Size) -> tuple[Any, dict, jax.ShapeDtypeStruct]:
    """Shapes, dtypes and shardings of a ``per_step_function`` call's arguments at ``size``: to compile
    ahead of time for devices this host does not have (tools/gpu_traffic.py, tools/tpu_compile.py)."""
    replicated, sharded = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    state = jax.eval_shape(lambda key: steps.init(key, size.image_size), jax.random.key(0))
    state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), state)
    images = (steps.data_batch_size(size.batch_size), size.image_size, size.image_size, 3)
    batch = {"image": jax.ShapeDtypeStruct(images, jnp.uint8, sharding=sharded)}
    return state, batch, jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)


PROFILED_CALLS = 10
def measure_mode(
    steps: Steps, initial: TrainState, mesh: jax.sharding.Mesh, data: DeviceFaces, steps_per_call: int, size: Size,
    profile_dir: Path | None = None, compiler_options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], jax.stages.Compiled]:
    """Compile and time one way of running the step from the host state ``initial``: one step per
    call, or k fused in a lax.scan; with ``profile_dir``, then trace ``PROFILED_CALLS`` more calls."""
    jitted = (per_step_function(steps, mesh, compiler_options) if steps_per_call == 1
              else parallel.compile_train_steps(steps.train_step, mesh, compiler_options))
    feed = _Feed(data, steps_per_call)
    state = parallel.put_replicated(initial, mesh)  # a fresh copy: the step donates it
    rng = parallel.put_replicated(jax.random.key(1), mesh)
    start = time.perf_counter()
    compiled = jitted.lower(state, feed(0), rng).compile()
    compile_s = time.perf_counter() - start

    def call(index: int) -> TrainState:
        nonlocal state
        state, _ = compiled(state, feed(index), rng)
        return state

    _log(f"compiled in {compile_s:.1f} s; timing")
    seconds = time_calls(call, windows=size.windows, window_s=size.window_s)
    if profile_dir is not None:
        _log(f"tracing {PROFILED_CALLS} calls into {profile_dir}")
        with jax.profiler.trace(str(profile_dir)):
            for index in range(PROFILED_CALLS):
                jax.block_until_ready(call(index))
    rates = [steps_per_call / s for s in seconds]
    return {
        "steps_per_call": steps_per_call,
        "compile_s": compile_s,
        "steps_per_s": statistics.median(rates),
        "window_steps_per_s": rates,
    }, compiled


def bench_step(
    steps: Steps, config: ml_collections.ConfigDict, initial: TrainState, size: Size, mesh: jax.sharding.Mesh,
    images: np.ndarray, fuse: int | None, profile_dir: Path | None = None,
) -> dict[str, Any]:
    """One (model, dtype) row: per-step and (if ``fuse``) fused timings, FLOPs, achieved rate."""
    model, dtype = config.model.kind, config.model.dtype
    data_batch = steps.data_batch_size(size.batch_size)
    parallel.check_batch_size(size.batch_size, data_batch, mesh)
    data = DeviceFaces(images, batch_size=data_batch, seed=0, mesh=mesh)
    modes: dict[str, Any] = {}
    options = parallel.step_compiler_options(config)
    _log(f"{model} {dtype}: one step per call")
    row_profile = None if profile_dir is None else profile_dir / f"{model}_{dtype}"
    modes["per_step"], compiled = measure_mode(steps, initial, mesh, data, 1, size, row_profile, options)
    if fuse and fuse > 1:
        _log(f"{model} {dtype}: {fuse} steps fused per call")
        modes["fused"], _ = measure_mode(steps, initial, mesh, data, fuse, size, compiler_options=options)
    counted = train_step_flops(steps, size.batch_size, size.image_size)
    best = max(modes.values(), key=lambda mode: mode["steps_per_s"])
    achieved = counted.total * best["steps_per_s"]
    peak_per_device = peak_tflops(mesh.devices.flat[0].device_kind, dtype)
    peak_total = None if peak_per_device is None else peak_per_device[1] * 1e12 * mesh.size
    return {
        "model": model,
        "dtype": dtype,
        "batch_size": size.batch_size,
        "data_batch_size": data_batch,
        "image_size": size.image_size,
        "width": size.width,
        "latent_dim": LATENT_DIM[model],
        "conv_transpose": config.model.conv_transpose,
        "discriminator_padding": config.model.discriminator_padding,
        "conv_fusion": "on" if options else "off",
        "modes": modes,
        "best_mode": max(modes, key=lambda name: modes[name]["steps_per_s"]),
        "steps_per_s": best["steps_per_s"],
        "images_per_s": best["steps_per_s"] * data_batch,
        "flops_per_step": counted.total,
        "xla_flops_per_step": xla_flops(compiled),
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": peak_total,
        "peak_fraction": None if peak_total is None else achieved / peak_total,
        "kernel_time": None if row_profile is None else kernel_time(row_profile, PROFILED_CALLS),
    }


def bench_device_input(images: np.ndarray, mesh: jax.sharding.Mesh, batch_size: int, fuse: int | None, size: Size) -> list[dict]:
    """The device-resident path alone: on-device shuffle + gather, one batch per call and k per call."""
    data = DeviceFaces(images, batch_size=batch_size, seed=0, mesh=mesh)
    rows = []
    for k in sorted({1, fuse or 1}):
        feed = _Feed(data, k)
        seconds = time_calls(feed, windows=size.windows, window_s=size.window_s)
        rows.append({
            "path": "device-resident" + (f", {k} batches per call" if k > 1 else ", 1 batch per call"),
            "batch_size": batch_size,
            "images_per_s": k * batch_size / statistics.median(seconds),
        })
    return rows


def bench_tfdata(store: FaceStore, mesh: jax.sharding.Mesh, batch_size: int, size: Size) -> dict:
    """tf.data over the store, each batch put on the device(s): median over epochs, first 2 batches skipped."""
    from gan_arith.data.tfdata import make_tfdata_iterator

    sharding = parallel.batch_sharding(mesh)
    rates = []
    for epoch in range(size.windows):
        iterator = make_tfdata_iterator(
            store, size=size.image_size, batch_size=batch_size, seed=0, epoch=epoch, process_index=0, process_count=1
        )
        for _ in range(2):  # pipeline start-up
            jax.block_until_ready(jax.device_put(next(iterator)["image"], sharding))
        start, count, out = time.perf_counter(), 0, None
        for batch in iterator:
            out = jax.device_put(batch["image"], sharding)
            count += batch["image"].shape[0]
        jax.block_until_ready(out)
        if count == 0:
            raise ValueError(f"--num-faces {store.num_faces} gives tf.data fewer than 3 batches of {batch_size}")
        rates.append(count / (time.perf_counter() - start))
    return {"path": "tf.data -> device", "batch_size": batch_size, "images_per_s": statistics.median(rates)}


def bench_conv_transpose(size: Size, generator_params: Any | None = None) -> dict:
    """Generator forward+backward (float32, the generator update's batch) with each transposed convolution.

    Both implementations share one parameter tree; ``generator_params`` (e.g. the DCGAN row's
    initial ones) saves initialising another generator.
    """
    z = jax.random.normal(jax.random.key(0), (size.batch_size, LATENT_DIM["dcgan"]))
    cotangent = jax.random.normal(jax.random.key(1), (size.batch_size, size.image_size, size.image_size, 3))
    result = {"batch_size": size.batch_size}
    for impl in ("phase", "dilated"):
        generator = dcgan_modules("auto")[0](LATENT_DIM["dcgan"], size.width, size.image_size, jnp.float32, impl)
        if generator_params is None:
            generator_params = jax.jit(generator.init)(jax.random.key(2), z)["params"]
        params = {"params": generator_params}

        def forward_backward(params, z, cotangent):
            # A cotangent passed in (not a constant) so that XLA cannot fold any of the backward pass away.
            return jax.vjp(lambda p: generator.apply(p, z), params)[1](cotangent)[0]

        _log(f"generator forward+backward, impl={impl}")
        start = time.perf_counter()
        compiled = jax.jit(forward_backward).lower(params, z, cotangent).compile()
        compile_s = time.perf_counter() - start
        seconds = time_calls(lambda _: compiled(params, z, cotangent), windows=size.windows, window_s=size.window_s)
        result[impl] = {"compile_s": compile_s, "ms": 1e3 * statistics.median(seconds)}
    result["dilated_over_phase"] = result["dilated"]["ms"] / result["phase"]["ms"]
    return result


def source_digest() -> str:
    """SHA-256 (12 hex digits) of the package's Python sources: which code a result file measured,
    also where no git checkout travels along (a copied working tree on a lent GPU)."""
    import hashlib

    root = Path(__file__).resolve().parents[1]  # gan_arith/
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _environment(size: Size, argv: Sequence[str]) -> dict[str, Any]:
    import flax

    devices = jax.devices()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m gan_arith.bench " + " ".join(argv),
        "source_digest": source_digest(),
        "size": dataclasses.asdict(size),
        "changes_from_seed": size.changes(),
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "host": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count()},
        "versions": {"jax": jax.__version__, "flax": flax.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "load_average_start": os.getloadavg(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def run(
    size: Size,
    *,
    models: Sequence[str] = MODELS,
    dtypes: Sequence[str] = DTYPES,
    fuse: int = 10,
    fused_rows: Sequence[str] | None = None,
    conv_transpose: str = "phase",
    discriminator_padding: str = "same",
    conv_fusion: str = "auto",
    skip: Sequence[str] = (),
    argv: Sequence[str] = (),
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return its results (the JSON written by the CLI).

    Every (model, dtype) row is timed one step per call; the rows named in ``fused_rows``
    ("model/dtype"; None: all) also with ``fuse`` steps per call in one lax.scan (fuse > 1).
    """
    started = time.perf_counter()
    results: dict[str, Any] = {"environment": _environment(size, argv)}
    mesh = parallel.make_mesh()
    with tempfile.TemporaryDirectory(prefix="gan_arith_bench_") as tmp:
        _log(f"rendering {size.num_faces} synthetic {size.image_size}x{size.image_size} faces")
        store = write_synthetic_store(Path(tmp) / "faces", num_faces=size.num_faces, image_sizes=[size.image_size])
        images = store.images(size.image_size)

        rows, initial = [], {}
        for model, dtype in ((m, d) for m in models for d in dtypes):
            config = step_config(model, dtype, size, conv_transpose, discriminator_padding, conv_fusion)
            steps = build_steps(config, parallel.batch_sharding(mesh))
            if model not in initial:
                # Parameters and optimizer state are float32 whatever the compute dtype: one init per model.
                _log(f"{model}: initialising")
                initial[model] = initial_state(steps, size.image_size)
            row_fuse = fuse if fused_rows is None or f"{model}/{dtype}" in fused_rows else None
            rows.append(bench_step(steps, config, initial[model], size, mesh, images, row_fuse, profile_dir))
        results["steps"] = rows

        if "input" not in skip:
            gan_batch = size.batch_size // 2 if "dcgan" in models else size.batch_size
            inputs = bench_device_input(images, mesh, gan_batch, fuse, size)
            if "tfdata" not in skip:
                try:
                    inputs.append(bench_tfdata(store, mesh, gan_batch, size))
                except ImportError as e:  # TensorFlow is optional (the `prepare` extra)
                    inputs.append({"path": "tf.data -> device", "skipped": f"TensorFlow not importable: {e}"})
            consumer = max(rows, key=lambda row: row["images_per_s"])
            for row in inputs:
                if "images_per_s" in row:
                    row["over_fastest_step"] = row["images_per_s"] / consumer["images_per_s"]
            results["input"] = {
                "batch_size": gan_batch,  # the GAN's real half-batch when it is benchmarked: the smallest, so the slowest
                "paths": inputs,
                "fastest_step": {k: consumer[k] for k in ("model", "dtype", "best_mode", "images_per_s")},
            }
        if "conv-transpose" not in skip:
            generator_params = initial["dcgan"].params["generator"] if "dcgan" in initial else None
            results["conv_transpose"] = bench_conv_transpose(size, generator_params)
    results["environment"]["load_average_end"] = os.getloadavg()
    results["environment"]["total_s"] = time.perf_counter() - started
    if size.is_seed_step:
        results["targets"] = judge_targets(results)
    return results


def _csv(choices: Sequence[str], name: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item for item in text.split(",") if item]
        bad = [item for item in items if item not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{name} must be a comma-separated subset of {','.join(choices)}, got {text!r}")
        return items

    return parse


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    on_cpu = jax.default_backend() == "cpu"
    parser = argparse.ArgumentParser(prog="python -m gan_arith.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu" if on_cpu else "seed",
                        help="seed: the seed's exact step; cpu: reduced (default on CPU)")
    parser.add_argument("--json", help="write the results here (atomically)")
    parser.add_argument("--models", type=_csv(MODELS, "--models"), default=list(MODELS), help="dcgan,vae")
    parser.add_argument("--dtypes", type=_csv(DTYPES, "--dtypes"), default=list(DTYPES), help="float32,bfloat16")
    parser.add_argument("--fuse", type=int, default=None,
                        help="steps fused per call in the lax.scan comparison (default 10; 2 on CPU); 1 turns it off")
    parser.add_argument("--fused-rows", default=None,
                        help="comma-separated model/dtype rows timed fused too, or 'all' (default all; vae/float32 on CPU)")
    parser.add_argument("--conv-transpose", choices=CONV_TRANSPOSE_IMPLS, default="phase",
                        help="transposed convolution of the timed steps (phase: the fast default; dilated: plain lax)")
    parser.add_argument("--discriminator-padding", choices=("same", "symmetric"), default="same",
                        help="the DCGAN discriminator's stride-2 padding (same: Keras, the seed; symmetric: PyTorch's)")
    parser.add_argument("--conv-fusion", choices=CONV_FUSION_CHOICES, default="auto",
                        help="XLA fusing convolutions with the elementwise operations after them into cuDNN "
                             "graphs (config.conv_fusion; auto: on for the DCGAN, and the VAE in bfloat16, on "
                             "CUDA with jax >= 0.11)")
    parser.add_argument("--skip", type=_csv(SECTIONS, "--skip"), default=[], help=f"sections to skip: {','.join(SECTIONS)}")
    parser.add_argument("--profile", type=Path, help="also trace a few one-step calls per row (jax.profiler) into this folder")
    for name in ("batch_size", "image_size", "width", "num_faces", "windows"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help="override the size preset")
    parser.add_argument("--window-s", type=float, help="override the size preset: seconds per timed window")
    args = parser.parse_args(argv)
    # Compile times are measured here: a persistent cache (JAX_COMPILATION_CACHE_DIR) would time its reads.
    jax.config.update("jax_enable_compilation_cache", False)

    overrides = {k: v for k, v in vars(args).items() if k in Size.__dataclass_fields__ and v is not None}
    size = dataclasses.replace(SIZES[args.size], **overrides)
    for name in ("batch_size", "image_size", "width", "num_faces", "windows"):
        if getattr(size, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(size, name)}")
    # XLA:CPU runs convolution gradients inside a while loop 5-9x slower (jax-ml/jax#12868), so on CPU
    # a fused step costs seconds: the comparison runs for one cheap row with a short k.
    fuse = args.fuse if args.fuse is not None else (2 if on_cpu else 10)
    if fuse < 1:
        raise SystemExit(f"--fuse must be >= 1, got {fuse}")
    rows = [f"{m}/{d}" for m in args.models for d in args.dtypes]
    if args.fused_rows is None:
        fused_rows = ["vae/float32" if "vae/float32" in rows else rows[0]] if on_cpu else None
    elif args.fused_rows == "all":
        fused_rows = None
    else:
        fused_rows = [row for row in args.fused_rows.split(",") if row]
        unknown = sorted(set(fused_rows) - set(rows))
        if unknown:
            raise SystemExit(f"--fused-rows {unknown} are not among the benchmarked rows {rows}")
    print(f"size {size.name}: changes from the seed's step: {size.changes()}; {size.num_faces} synthetic faces",
          flush=True)
    if on_cpu and args.fused_rows is None and fuse > 1:
        print(f"on CPU the {fuse}-step lax.scan is timed for {fused_rows[0]} only: XLA:CPU runs convolution "
              "gradients inside loops 5-9x slower (jax-ml/jax#12868); --fused-rows all times every row", flush=True)
    results = run(size, models=args.models, dtypes=args.dtypes, fuse=fuse, fused_rows=fused_rows,
                  conv_transpose=args.conv_transpose, discriminator_padding=args.discriminator_padding,
                  conv_fusion=args.conv_fusion,
                  skip=args.skip, argv=argv, profile_dir=args.profile)
    print(format_report(results), flush=True)
    if args.json:
        write_json(results, args.json)
        print(f"wrote {args.json}", flush=True)
    return results
