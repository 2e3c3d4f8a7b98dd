"""Services every stage shares, below all of them: camera, Gaussians and the renderer, PLY, images,
atomic file I/O, run-folder paths and the backend registry (docs/architecture.md section 2)."""
