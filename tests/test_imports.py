"""The core must run on GPU/TPU hosts that have no TensorFlow: importing it must not pull TensorFlow in."""

import subprocess
import sys

CORE_MODULES = [
    "gan_arith.models.dcgan",
    "gan_arith.models.vae",
    "gan_arith.models.autoencoder",
    "gan_arith.models.fast",
    "gan_arith.train.steps",
    "gan_arith.train.parallel",
    "gan_arith.data.store",
    "gan_arith.data.synthetic",
    "gan_arith.data.device",
    "gan_arith.latent.expression",
    "gan_arith.latent.concepts",
    "gan_arith.latent.directions",
    "gan_arith.latent.interpolate",
    "gan_arith.latent.distributions",
    "gan_arith.models.classifier",
    "gan_arith.train.loop",
    "gan_arith.train.checkpoint",
    "gan_arith.config",
    "gan_arith.figures",
    "gan_arith.bench",
    "gan_arith.flops",
    "gan_arith.artifacts",
    "gan_arith.evaluation.scorer",
    "gan_arith.evaluation.frechet",
    "gan_arith.evaluation.sampling",
    "gan_arith.evaluation.inversion",
    "gan_arith.evaluation.noise_classifier",
    "gan_arith.evaluation.success_rate",
    "gan_arith.data.sources",
    "gan_arith.data.export",
]


def test_core_imports_without_tensorflow():
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in CORE_MODULES)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'mtcnn'))\n"
        + "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"core imported TensorFlow modules: {result.stdout} {result.stderr[-2000:]}"


def test_the_check_itself_detects_tensorflow():
    # Guard against a check that cannot fail: the data-preparation path does import TensorFlow when used.
    code = "import sys, gan_arith.data.tfdata as t; import tensorflow; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("True"), result.stderr[-2000:]
