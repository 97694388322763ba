"""The core must run on GPU/TPU hosts that have no TensorFlow: importing it must not pull TensorFlow in."""

import ast
import subprocess
import sys

import pytest

CORE_MODULES = [
    "gan_arith.models.dcgan",
    "gan_arith.models.vae",
    "gan_arith.models.autoencoder",
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
    "gan_arith.bench.measure",
    "gan_arith.bench.flops",
    "gan_arith.bench.trace",
    "gan_arith.bench.report",
    "gan_arith.data.prepare",
    "gan_arith.data.faces",
    "gan_arith.data.raw_images",
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


def tensorflow_modules_after_importing(modules: list[str]) -> list[str]:
    """The TensorFlow, tensorflow-datasets and mtcnn modules loaded by importing ``modules`` in a fresh Python."""
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in modules)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'mtcnn')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_core_imports_without_tensorflow():
    assert tensorflow_modules_after_importing(CORE_MODULES) == []


@pytest.mark.slow
def test_the_check_itself_detects_tensorflow():
    # Guard against a check that cannot fail: a module that imports TensorFlow when imported (mtcnn does)
    # among the core modules must be reported.
    assert "tensorflow" in tensorflow_modules_after_importing(CORE_MODULES[:1] + ["mtcnn"])
