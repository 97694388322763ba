"""Training: pure steps, the one loop, checkpoints, data parallelism.

- state: the train state, batch and metrics types shared with the evaluation tools.
- steps: the GAN, VAE and autoencoder train and eval steps, pure (the caller jits).
- parallel: the device mesh, shardings, compiled steps and multi-host start-up.
- checkpoint: orbax checkpoints and the run's saved config under its workdir.
- loop: the one training loop, given its face store and any added eval metric by the caller.
Nothing here imports evaluation, latent or experiments.
"""
