"""The avatar: canonical Gaussians and a latent decoder (model.py), their training (train.py, losses.py,
densify.py) and the trained avatar's API (avatar.py: render, compose, interpolate, sample, fit codes)."""
