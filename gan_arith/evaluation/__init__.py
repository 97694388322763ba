"""Numbers for what the seeds judged by eye.

- classifier_train: train/evaluate the attribute classifier (evaluation/classifier_network.py).
- success_rate: how often arithmetic results carry the target attributes, vs random samples (Wilson CI).
- judge: an independent attribute classifier (another architecture, the other half of the train faces)
  that reads the success rates beside the project classifier, with its hit rate on real target faces.
- frechet: Fréchet distance and KID in the classifier's (or a user-supplied network's) feature space.
- sampling: batched scoring, top-fraction filtering and discriminator rejection sampling.
- inversion: image -> latent by optimisation and/or a trained encoder; PSNR and SSIM.
- noise_classifier: predict from z alone whether G(z) will be good; ROC AUC; sample good noise.
Their figures (best/worst-scored faces, originals vs reconstructions) live in gan_arith.figures.
"""
