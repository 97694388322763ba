"""Model FLOPs of one train step, counted from the layer shapes, and XLA's own count to check it.

What is counted: every application of ``nn.Dense``, ``nn.Conv``, ``Conv2x``, ``ConvFromPhases``,
``nn.ConvTranspose`` and ``ConvTranspose2x``, and the fast ``Discriminator``'s convolutions (computed
outside flax layers; from its ``convolution_layers``), as multiply-accumulates (MACs), one FLOP
pair each (FLOPs = 2·MACs):

- Dense: (product of the leading dims) · in · out.
- Conv: B · H_out · W_out · kh · kw · (C_in / groups) · C_out. Taps that land on 'SAME' padding
  are counted, as the usual counters (fvcore, PyTorch's flop counter) do.
- Transposed conv: B · H_in · W_in · kh · kw · C_in · C_out: every input pixel meets every kernel
  tap once. The zeros of the dilated formulation are not counted, so impl="phase" and
  impl="dilated" have the same model FLOPs although the dilated one executes about 4x the
  multiplications of a stride-2 layer.

Per pass of a network over a batch: forward 2·MACs per layer; backward with respect to a
layer's input 2·MACs where a gradient must flow into that input (every layer but the first,
unless the pass's own input needs a gradient); backward with respect to the weights 2·MACs where
the pass trains them. A trained network thus costs 3x its forward pass, less its first layer's
input gradient; a frozen network that only passes gradients back (the discriminator in the
generator update) costs 2x.

Not counted: bias adds, activations, normalisation, dropout, losses, the optimizer, random
numbers and the uint8 conversion (all elementwise). XLA's ``cost_analysis`` counts those, but
not the taps that fall on padding or on the zeros of a dilated input; on these models it comes
out a few percent below this count (0.94x for a 40x40 DCGAN step, where borders are a larger
share), and the same for impl="phase" and impl="dilated".
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_arith.models.fast.dcgan import DISCRIMINATOR_KERNEL, Discriminator
from gan_arith.models.fast.phases import ConvFromPhases
from gan_arith.models.layers import CONV_TRANSPOSE_IMPLS, Conv2x, ConvTranspose2x
from gan_arith.train.steps import AutoencoderSteps, GANSteps, Steps, VAESteps


@dataclasses.dataclass(frozen=True)
class Layer:
    """One MAC-bearing layer application: its module path, kind and shapes."""

    path: str
    kind: str  # "Dense", "Conv" or "ConvTranspose"
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    macs: int


def _layer_macs(module: nn.Module, x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> tuple[str, int]:
    if isinstance(module, nn.Dense):
        return "Dense", math.prod(x_shape[:-1]) * x_shape[-1] * y_shape[-1]
    if isinstance(module, ConvTranspose2x):
        return "ConvTranspose", math.prod(x_shape[:-1]) * module.kernel_size**2 * x_shape[-1] * y_shape[-1]
    if isinstance(module, Conv2x):
        return "Conv", math.prod(y_shape[:-1]) * module.kernel_size**2 * x_shape[-1] * y_shape[-1]
    if isinstance(module, ConvFromPhases):  # a 'SAME' conv of the image the phases hold (shape: the image's)
        return "Conv", math.prod(y_shape[:-1]) * module.kernel_size**2 * x_shape[-1] * y_shape[-1]
    kernel = (module.kernel_size,) if isinstance(module.kernel_size, int) else tuple(module.kernel_size)
    if isinstance(module, nn.ConvTranspose):
        return "ConvTranspose", math.prod(x_shape[:-1]) * math.prod(kernel) * x_shape[-1] * y_shape[-1]
    groups = module.feature_group_count
    return "Conv", math.prod(y_shape[:-1]) * math.prod(kernel) * (x_shape[-1] // groups) * y_shape[-1]


_COUNTED = (nn.Dense, nn.Conv, Conv2x, ConvFromPhases, nn.ConvTranspose, ConvTranspose2x)


def _discriminator_convolutions(module: Discriminator, images_shape: tuple[int, ...]) -> list[Layer]:
    batch, size = images_shape[0], images_shape[1]
    layers = []
    for index, (in_features, features, stride) in enumerate(module.convolution_layers()):
        out = size // stride
        macs = batch * out * out * DISCRIMINATOR_KERNEL**2 * in_features * features
        path = "/".join((*module.path, f"Conv_{index}"))
        layers.append(Layer(path, "Conv", (batch, size, size, in_features), (batch, out, out, features), macs))
        size = out
    return layers


def model_layers(module: nn.Module, *args: Any, **kwargs: Any) -> list[Layer]:
    """The counted layers met by ``module.init(rngs, *args, **kwargs)``, in call order.

    Only shapes are traced (``jax.eval_shape``): nothing is computed, so the seed's sizes cost
    nothing. ``args`` may be arrays or ``jax.ShapeDtypeStruct``s.
    """
    layers: list[Layer] = []

    def record(next_fun, call_args, call_kwargs, context):
        first = len(layers)
        out = next_fun(*call_args, **call_kwargs)
        if context.method_name == "__call__" and isinstance(context.module, _COUNTED):
            x_shape, y_shape = tuple(call_args[0].shape), tuple(out.shape)
            kind, macs = _layer_macs(context.module, x_shape, y_shape)
            layers.append(Layer("/".join(context.module.path), kind, x_shape, y_shape, macs))
        if context.method_name == "__call__" and isinstance(context.module, Discriminator):
            # Its convolutions run outside flax layers (Discriminator.convolutions); they come before its Dense.
            layers[first:first] = _discriminator_convolutions(context.module, tuple(call_args[0].shape))
        return out

    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    with nn.intercept_methods(record):
        jax.eval_shape(lambda *a: module.init(rngs, *a, **kwargs), *args)
    if not layers:
        raise ValueError(f"{type(module).__name__} applies no Dense, Conv or ConvTranspose layer: nothing to count")
    return layers


@dataclasses.dataclass(frozen=True)
class Pass:
    """One network pass over a batch inside a train step, and which gradients it needs."""

    description: str
    layers: tuple[Layer, ...]
    train_weights: bool
    input_grad: bool

    @property
    def forward(self) -> int:
        return 2 * sum(layer.macs for layer in self.layers)

    @property
    def backward_input(self) -> int:
        # A gradient reaches layer i's input if anything before it is trained (i > 0) or the pass's input needs one.
        needs = [self.input_grad] + [self.train_weights or self.input_grad] * (len(self.layers) - 1)
        return 2 * sum(layer.macs for layer, need in zip(self.layers, needs) if need)

    @property
    def backward_weights(self) -> int:
        return self.forward if self.train_weights else 0

    @property
    def total(self) -> int:
        return self.forward + self.backward_input + self.backward_weights


@dataclasses.dataclass(frozen=True)
class StepFlops:
    """The passes of one train step; ``total`` is the model FLOPs per step."""

    passes: tuple[Pass, ...]

    @property
    def total(self) -> int:
        return sum(p.total for p in self.passes)

    def table(self) -> str:
        """A human-readable breakdown, one line per pass, in GFLOP."""
        rows = [f"{'pass':58s} {'fwd':>9s} {'bwd in':>9s} {'bwd w':>9s} {'total':>9s}  GFLOP"]
        for p in self.passes:
            rows.append(
                f"{p.description:58s} {p.forward / 1e9:9.2f} {p.backward_input / 1e9:9.2f} "
                f"{p.backward_weights / 1e9:9.2f} {p.total / 1e9:9.2f}"
            )
        rows.append(f"{'step':58s} {'':9s} {'':9s} {'':9s} {self.total / 1e9:9.2f}")
        return "\n".join(rows)


def _images(n: int, image_size: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((n, image_size, image_size, 3), jnp.float32)


def train_step_flops(steps: Steps, batch_size: int, image_size: int) -> StepFlops:
    """Model FLOPs of ``steps.train_step`` at the configured ``batch_size`` (see the module docstring).

    The GAN step at batch B (B/2 real faces): generator forward on B/2 latents; discriminator
    trained on B images; generator trained on B latents through the discriminator, which passes
    gradients back to its input without training. The VAE: encoder trained on B images, decoder
    trained on B sampled latents that carry gradients back to the encoder. The autoencoder:
    trained on B images.
    """
    if isinstance(steps, GANSteps):
        n = steps.data_batch_size(batch_size)
        latents = lambda num: jax.ShapeDtypeStruct((num, steps.generator.latent_dim), jnp.float32)
        g_fakes = model_layers(steps.generator, latents(n))
        g_train = model_layers(steps.generator, latents(2 * n))
        d_layers = model_layers(steps.discriminator, _images(2 * n, image_size), train=True)
        return StepFlops((
            Pass(f"generator forward, {n} latents (fakes for D)", tuple(g_fakes), False, False),
            Pass(f"discriminator trained, {n} real + {n} generated", tuple(d_layers), True, False),
            Pass(f"generator trained, {2 * n} latents", tuple(g_train), True, False),
            Pass(f"discriminator frozen, gradient to its {2 * n} inputs", tuple(d_layers), False, True),
        ))
    if isinstance(steps, VAESteps):
        layers = model_layers(steps.model, _images(batch_size, image_size), jax.random.key(0), train=True)
        encoder = tuple(layer for layer in layers if layer.path.startswith("encoder/"))
        decoder = tuple(layer for layer in layers if layer.path.startswith("decoder/"))
        return StepFlops((
            Pass(f"encoder trained, {batch_size} images", encoder, True, False),
            Pass(f"decoder trained, {batch_size} latents (gradient to encoder)", decoder, True, True),
        ))
    if isinstance(steps, AutoencoderSteps):
        layers = model_layers(steps.model, _images(batch_size, image_size), train=True)
        return StepFlops((Pass(f"autoencoder trained, {batch_size} images", tuple(layers), True, False),))
    raise TypeError(f"steps must be GANSteps, VAESteps or AutoencoderSteps, got {type(steps).__name__}")


def xla_flops(compiled: jax.stages.Compiled) -> float | None:
    """XLA's own FLOP count of a compiled computation, or None where the backend gives none.

    Note that XLA counts a while loop's body once, whatever its trip count: ask a one-step
    computation, not a ``lax.scan`` over several.
    """
    try:
        analysis = compiled.cost_analysis()
    except (NotImplementedError, RuntimeError):
        return None
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per computation
        analysis = analysis[0] if analysis else None
    flops = analysis.get("flops") if analysis else None
    return float(flops) if flops and flops > 0 else None


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gan_arith.bench.flops [--kind dcgan] [--batch-size 128] [--image-size 80] [--xla]``."""
    from gan_arith.config import base_config
    from gan_arith.train.steps import build_steps

    parser = argparse.ArgumentParser(prog="python -m gan_arith.bench.flops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("dcgan", "vae", "ae"), default="dcgan")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=80)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=None, help="default: 100 (dcgan), 256 (vae)")
    parser.add_argument("--conv-transpose", choices=CONV_TRANSPOSE_IMPLS, default="phase")
    parser.add_argument("--xla", action="store_true", help="also compile one step and print XLA's count")
    args = parser.parse_args(argv)
    latent = args.latent_dim or (256 if args.kind == "vae" else 100)
    config = base_config(args.kind)
    config.model.update(latent_dim=latent, width=args.width, image_size=args.image_size, conv_transpose=args.conv_transpose)
    steps = build_steps(config)
    counted = train_step_flops(steps, args.batch_size, args.image_size)
    print(counted.table())
    if args.xla:
        state = jax.eval_shape(lambda key: steps.init(key, args.image_size), jax.random.key(0))
        n = steps.data_batch_size(args.batch_size)
        batch = {"image": jax.ShapeDtypeStruct((n, args.image_size, args.image_size, 3), jnp.uint8)}
        xla = xla_flops(jax.jit(steps.train_step).lower(state, batch, jax.random.key(0)).compile())
        ratio = f" ({xla / counted.total:.3f}x counted)" if xla else ""
        print(f"XLA cost_analysis: {'n/a' if xla is None else f'{xla / 1e9:.2f} GFLOP'}{ratio}")


if __name__ == "__main__":
    main()
