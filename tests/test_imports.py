"""The house's imports: the core runs on GPU/TPU hosts without TensorFlow or the optional explorer
(gan_arith.explore) and its web libraries, and the layers point one way (no import circle; training
imports nothing of evaluation, the latent tools or the experiments)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE_MODULES = [
    "gan_arith.models.dcgan",
    "gan_arith.models.vae",
    "gan_arith.models.autoencoder",
    "gan_arith.train.state",
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
    "gan_arith.evaluation.classifier_network",
    "gan_arith.train.loop",
    "gan_arith.train.checkpoint",
    "gan_arith.config",
    "gan_arith.cli",
    "gan_arith.runs",
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
    "gan_arith.data.stores",
    "gan_arith.data.selection",
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


def test_core_imports_without_the_explorer():
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in CORE_MODULES + ["gan_arith.latent.pools", "gan_arith.latent.sweeps"])
        + "bad = sorted(m for m in sys.modules if m.startswith('gan_arith.explore')\n"
        + "             or m.split('.')[0] in ('starlette', 'fastapi', 'uvicorn', 'playwright'))\n"
        + "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"core imported the explorer: {result.stdout} {result.stderr[-2000:]}"


REPO = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the modules of gan_arith and experiments it imports}, read from the source (imports inside
    functions included)."""
    modules = {_module_name(path): path for package in ("gan_arith", "experiments") for path in (REPO / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from gan_arith.train import loop` imports the module gan_arith.train.loop
                imported |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                             for alias in node.names}
        graph[name] = {module for module in imported if module in modules and module != name}
    return graph


def test_the_import_graph_is_read_from_the_source():
    graph = import_graph()
    assert {"gan_arith.train.steps", "gan_arith.train.state"} <= graph["gan_arith.train.loop"]
    assert "gan_arith.data.prepare" in graph["gan_arith.data.stores"]  # imported inside a function
    assert "gan_arith.artifacts" in graph["experiments.dcgan_celeba"]


def test_no_import_circle():
    graph = import_graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_training_reaches_nothing_of_evaluation_latent_or_experiments():
    graph = import_graph()
    reached, todo = set(), [module for module in graph if module.startswith("gan_arith.train")]
    while todo:  # everything training imports, directly or through other modules
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += graph[module]
    assert not sorted(m for m in reached if m.startswith(("gan_arith.evaluation", "gan_arith.latent", "experiments")))
