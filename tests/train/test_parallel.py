"""Data parallelism: a 4-device mesh (forced CPU devices, in a subprocess) gives the single-device losses."""

import json
import subprocess
import sys
import textwrap
import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import pytest

from gan_arith.config import base_config
from gan_arith.train import parallel

SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import json
    import jax, jax.numpy as jnp, numpy as np
    from gan_arith.config import base_config
    from gan_arith.train import parallel
    from gan_arith.train.steps import build_steps

    assert jax.device_count() == 4, jax.devices()
    results = {}
    for kind, size in (("dcgan", 10), ("vae", 10)):
        config = base_config(kind)
        config.model.update(latent_dim=8, width=8, image_size=size)
        config.optimizer.learning_rate = 1e-3
        images = np.random.default_rng(0).integers(0, 256, (3, 8, size, size, 3), dtype=np.uint8)
        for devices in (1, 4):
            mesh = parallel.make_mesh(jax.devices()[:devices])
            steps = build_steps(config, parallel.batch_sharding(mesh))
            state = parallel.put_replicated(steps.init(jax.random.key(0), size), mesh)
            run = parallel.compile_train_steps(steps.train_step, mesh)
            batches = jax.device_put({"image": images}, parallel.batch_sharding(mesh, leading_axes=1))
            assert len(batches["image"].sharding.device_set) == devices
            state, metrics = run(state, batches, jax.random.key(1))
            results[f"{kind}-{devices}"] = {k: np.asarray(v).tolist() for k, v in metrics.items()}
    print("RESULTS" + json.dumps(results))
    """
)


@pytest.mark.slow
def test_four_devices_match_one_device():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.split("RESULTS", 1)[1])
    for kind in ("dcgan", "vae"):
        one, four = results[f"{kind}-1"], results[f"{kind}-4"]
        assert one.keys() == four.keys()
        for name in one:
            for a, b in zip(one[name], four[name]):
                assert abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1e-3), (kind, name, one[name], four[name])


def test_a_batch_that_does_not_divide_over_the_devices_names_the_batch_size_set():
    mesh = types.SimpleNamespace(size=3)  # all the check reads of a mesh
    parallel.check_batch_size(12, 6, mesh)
    with pytest.raises(ValueError, match=r"^batch size 16 \(its 8 real faces per step are what the devices share\) "
                                         r"does not divide over 3 devices: use a multiple of 6$"):
        parallel.check_batch_size(16, 8, mesh)
    with pytest.raises(ValueError, match=r"^batch size 16 does not divide over 3 devices: use a multiple of 3$"):
        parallel.check_batch_size(16, 16, mesh)


def _device(platform: str, platform_version: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(platform=platform, client=types.SimpleNamespace(platform_version=platform_version))


def test_conv_fusion_auto_is_on_only_where_it_was_measured_faster():
    cuda, rocm, cpu = _device("gpu", "cuda 13000"), _device("gpu", "rocm 6.4"), _device("cpu", "cpu")
    assert parallel.conv_fusion_enabled("auto", "dcgan", "bfloat16", cuda, jax_version="0.11.2")
    assert parallel.conv_fusion_enabled("auto", "dcgan", "bfloat16", cuda, jax_version="0.12.0")
    assert parallel.conv_fusion_enabled("auto", "dcgan", "float32", cuda, jax_version="0.11.2")
    assert parallel.conv_fusion_enabled("auto", "vae", "bfloat16", cuda, jax_version="0.11.2")
    for kind, dtype, device, version in (
        ("dcgan", "float32", cuda, "0.10.2"),  # jax 0.10's XLA materialises the fused broadcasts
        ("dcgan", "bfloat16", cuda, "0.10.2"),  # jax 0.10's XLA materialises the fused broadcasts
        ("vae", "float32", cuda, "0.11.2"), ("ae", "bfloat16", cuda, "0.11.2"),  # not measured
        ("dcgan", "bfloat16", rocm, "0.11.2"), ("dcgan", "bfloat16", cpu, "0.11.2"),  # no cuDNN
    ):
        assert not parallel.conv_fusion_enabled("auto", kind, dtype, device, jax_version=version), (kind, dtype, version)
    assert parallel.conv_fusion_enabled("on", "vae", "float32", cpu)
    assert not parallel.conv_fusion_enabled("off", "dcgan", "bfloat16", cuda, jax_version="0.11.2")


class _State(NamedTuple):  # all fuse_steps reads of a train state
    step: jax.Array


def test_an_xla_without_the_conv_fusion_option_compiles_plainly_on_auto_and_refuses_on(monkeypatch, capsys):
    # A later jaxlib may rename or drop the experimental option.
    config = base_config("dcgan")
    config.model.dtype = "bfloat16"
    monkeypatch.setattr(parallel, "XLA_CONV_FUSION", "xla_gpu_no_such_option")
    monkeypatch.setattr(parallel, "_is_cuda", lambda device: True)  # as auto would on a GPU with jax >= 0.11
    monkeypatch.setattr(parallel, "CONV_FUSION_MIN_JAX", (0, 0))
    assert parallel.conv_fusion_enabled("auto", "dcgan", "bfloat16")
    assert parallel.step_compiler_options(config) == {}
    assert "does not take xla_gpu_no_such_option; steps compile without conv fusion" in capsys.readouterr().err
    config.conv_fusion = "on"
    with pytest.raises(ValueError, match=r"^config.conv_fusion='on', but this jaxlib's XLA does not take xla_gpu_no_such_option: .*No such compile option"):
        parallel.step_compiler_options(config)


def test_step_compiler_options_reach_xla():
    config = base_config("vae")
    assert parallel.step_compiler_options(config) == {}  # auto, on this CPU
    config.conv_fusion = "on"
    assert parallel.step_compiler_options(config) == {parallel.XLA_CONV_FUSION: True}
    # The options are given to XLA's compiler: one it does not know fails the compile.
    mesh = parallel.make_mesh(jax.devices()[:1])
    state = _State(step=jnp.zeros((), jnp.int32))

    def train_step(state, batch, rng):
        return state, {"loss": batch["image"].sum()}

    def eval_step(state, batch, rng):
        return train_step(state, batch, rng)[1]

    for compile_, batch in ((parallel.compile_train_steps, {"image": jnp.ones((1, 2, 2))}),
                            (lambda _, mesh, options: parallel.compile_eval_step(eval_step, mesh, options), {"image": jnp.ones((2, 2))})):
        with pytest.raises(Exception, match="xla_no_such_option"):
            compile_(train_step, mesh, {"xla_no_such_option": True}).lower(state, batch, jax.random.key(0)).compile()
        compile_(train_step, mesh, parallel.step_compiler_options(config)).lower(state, batch, jax.random.key(0)).compile()
