"""gan_arith: DCGAN and convolutional VAE on cropped faces, and arithmetic in their latent spaces."""

__version__ = "0.1.0"
