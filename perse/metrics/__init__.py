"""PERSE's metrics: image quality on held-out frames, identity, interpolation smoothness, disentanglement."""
