"""Data parallelism: a 4-device mesh (forced CPU devices, in a subprocess) gives the single-device losses,
also with the fused discriminator (its layer stack runs per device under shard_map)."""

import json
import subprocess
import sys
import textwrap
import types

import pytest

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
    for name, size in (("dcgan", 10), ("dcgan-fused", 10), ("vae", 10)):
        kind = name.split("-")[0]
        config = base_config(kind)
        config.model.update(latent_dim=8, width=8, image_size=size, fused_discriminator=name.endswith("fused"))
        config.optimizer.learning_rate = 1e-3
        images = np.random.default_rng(0).integers(0, 256, (3, 8, size, size, 3), dtype=np.uint8)
        for devices in (1, 4):
            mesh = parallel.make_mesh(jax.devices()[:devices])
            steps = build_steps(config, parallel.batch_sharding(mesh))
            state = parallel.put_replicated(steps.init(jax.random.key(0), size), mesh)
            run = parallel.compile_train_steps(steps.train_step, mesh)
            batches = jax.device_put({"image": images}, parallel.batch_sharding(mesh, leading_axes=1))
            assert len(batches["image"].sharding.device_set) == devices
            if name.endswith("fused") and devices > 1:  # the fused stack runs per device, not gathered
                assert "shard_map" in str(jax.make_jaxpr(run)(state, batches, jax.random.key(1)))
            state, metrics = run(state, batches, jax.random.key(1))
            results[f"{name}-{devices}"] = {k: np.asarray(v).tolist() for k, v in metrics.items()}
    print("RESULTS" + json.dumps(results))
    """
)


def test_four_devices_match_one_device():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.split("RESULTS", 1)[1])
    # The fused discriminator's runs are compared with the plain single-device one: same function.
    for kind, reference in (("dcgan", "dcgan-1"), ("dcgan-fused", "dcgan-1"), ("vae", "vae-1")):
        one, four = results[reference], results[f"{kind}-4"]
        assert one.keys() == four.keys() == results[f"{kind}-1"].keys()
        for name in one:
            for a, b, c in zip(one[name], four[name], results[f"{kind}-1"][name]):
                for other in (b, c):
                    assert abs(a - other) <= 1e-5 * max(abs(a), abs(other), 1e-3), (kind, name, one[name], four[name])


def test_a_batch_that_does_not_divide_over_the_devices_names_the_batch_size_set():
    mesh = types.SimpleNamespace(size=3)  # all the check reads of a mesh
    parallel.check_batch_size(12, 6, mesh)
    with pytest.raises(ValueError, match=r"^batch size 16 \(its 8 real faces per step are what the devices share\) "
                                         r"does not divide over 3 devices: use a multiple of 6$"):
        parallel.check_batch_size(16, 8, mesh)
    with pytest.raises(ValueError, match=r"^batch size 16 does not divide over 3 devices: use a multiple of 3$"):
        parallel.check_batch_size(16, 16, mesh)
