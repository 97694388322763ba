"""Latent-space toolkit: concept arithmetic, attribute directions, interpolation, distributions.

- expression: parse `smiling_woman - neutral_woman + neutral_man` into {name: coefficient}; evaluate it.
- concepts: concept definitions (hand-picked indices, attribute queries, classifier-scored samples),
  random draws of k members, concept vectors (means) and arithmetic over draws.
- directions: attribute directions (mean difference, logistic-regression normal), conditional
  projection, strength sweeps.
- interpolate: lerp, slerp and paths through several points.
- distributions: per-dimension statistics, normality tests, histogram data (JSON-serialisable).
- pools: latent pools for arithmetic (hand-picked grid, classifier-scored samples, encoded or
  inverted real faces) with the face each latent stands for.
- arithmetic: arithmetic on a trained model: faces of concept averages and results, the seeds' figures.
- sweeps: interpolation strips and attribute-edit sweeps on a trained model.
- averaging: success rates per k (members per concept) and per way of averaging (latents, or the
  VAE seed's average image encoded), GAN against VAE on the same real faces; their figures and tables.
Figures live in gan_arith.figures.
"""
