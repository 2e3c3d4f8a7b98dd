"""Densify and prune at a fixed Gaussian budget: Gaussians that faded out are moved to where they help.

Two rules behind one small protocol, chosen by `avatar.densifier` (`auto`: mcmc on CUDA, relocate on CPU):
- `mcmc` (CUDA): gsplat's MCMC strategy ("3D Gaussian Splatting as Markov Chain Monte Carlo"): faint Gaussians
  are teleported onto live ones sampled by opacity, with gsplat's relocation kernel splitting opacity
  and scale so the rendered image is preserved, and near-transparent Gaussians get positional noise.
  `cap_max` is the budget, so the strategy relocates and never grows.
- `relocate` (any device; gsplat's kernels are CUDA-only): faint Gaussians land on copies of those with the largest
  accumulated position gradient, each parent split into two smaller halves.

Both act on the canonical Gaussians (AvatarModel's per-Gaussian parameters, decoder features included)
and keep the optimizer's state consistent; both draw their random numbers from a generator seeded by
the step, so a resumed run makes the same draws as an uninterrupted one.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch

from perse.avatar.model import AvatarModel, inverse_sigmoid
from perse.config import AvatarConfig
from perse.core.registry import Registry

# gsplat's parameter names -> AvatarModel's attributes; every per-Gaussian tensor is listed, since a
# relocated Gaussian must carry all of its state.
GAUSSIAN_PARAMS = {"means": "means", "scales": "log_scales", "quats": "quats", "opacities": "opacity_logits",
                   "colors": "color_logits", "features": "features"}


class Densifier(Protocol):
    def after_backward(self) -> None:
        """Collect what the next refinement needs from this step's gradients."""

    def after_step(self, step: int, means_lr: float) -> None:
        """Called after the optimizer's step `step` (1-based), with the current position learning rate."""

    def state_dict(self) -> dict:
        ...

    def load_state_dict(self, state: dict) -> None:
        ...


def make_densifier(model: AvatarModel, optimizer: torch.optim.Optimizer, config: AvatarConfig, seed: int
                   ) -> Densifier | None:
    if not config.densify:
        return None
    return DENSIFIERS.load(config.densifier, model.means.device.type)(model, optimizer, config, seed)


def _refines(config: AvatarConfig, step: int) -> bool:
    return step % config.densify_every == 0 and step < config.densify_until * config.steps


def _step_seed(seed: int, step: int) -> int:
    return seed * 7919 + step


class GradientRelocation:
    """The CPU rule (see the module docstring)."""

    def __init__(self, model: AvatarModel, optimizer: torch.optim.Optimizer, config: AvatarConfig, seed: int):
        self.model, self.optimizer, self.config, self.seed = model, optimizer, config, seed
        self.grad_accum = torch.zeros(model.num_gaussians, device=model.means.device)

    def after_backward(self) -> None:
        self.grad_accum += self.model.means.grad.norm(dim=-1)

    def after_step(self, step: int, means_lr: float) -> None:
        if _refines(self.config, step):
            self.relocate(step)

    @torch.no_grad()
    def relocate(self, step: int) -> None:
        m = self.model
        opacity = torch.sigmoid(m.opacity_logits)
        dead = (opacity < self.config.prune_opacity).nonzero()[:, 0]
        alive = (opacity >= self.config.prune_opacity).nonzero()[:, 0]
        if len(dead) and len(alive):
            generator = torch.Generator(device=m.means.device).manual_seed(_step_seed(self.seed, step))
            weight = self.grad_accum[alive] + 1e-12
            parents = alive[torch.multinomial(weight, len(dead), replacement=True, generator=generator)]
            scales = torch.exp(m.log_scales[parents])
            noise = torch.randn(len(dead), 3, device=m.means.device, generator=generator)
            m.means[dead] = m.means[parents] + noise * scales
            m.log_scales[parents] -= math.log(1.6)
            # Two halves that together cover what the parent covered: 1 - (1 - o')^2 = o.
            halved = inverse_sigmoid(1 - torch.sqrt(1 - opacity[parents].clamp_max(0.99)))
            m.opacity_logits[parents] = halved
            for attribute in GAUSSIAN_PARAMS.values():
                if attribute != "means":
                    getattr(m, attribute)[dead] = getattr(m, attribute)[parents]
            touched = torch.cat([dead, parents])
            for attribute in GAUSSIAN_PARAMS.values():
                state = self.optimizer.state.get(getattr(m, attribute), {})
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key][touched] = 0
        self.grad_accum.zero_()

    def state_dict(self) -> dict:
        return {"grad_accum": self.grad_accum}

    def load_state_dict(self, state: dict) -> None:
        self.grad_accum = state["grad_accum"].to(self.grad_accum.device)


class _GroupAsOptimizer:
    """gsplat's strategy ops expect one optimizer per parameter; this shows one single-parameter group
    of our optimizer as such (the ops replace the group's parameter and move its state)."""

    def __init__(self, optimizer: torch.optim.Optimizer, group: dict):
        self.param_groups = [group]
        self.state = optimizer.state


class GsplatMCMC:
    """The CUDA rule: gsplat's MCMCStrategy (see the module docstring)."""

    def __init__(self, model: AvatarModel, optimizer: torch.optim.Optimizer, config: AvatarConfig, seed: int):
        from perse.core.render import load_gsplat

        strategy_module = load_gsplat().strategy
        self.model, self.config, self.seed = model, config, seed
        self.strategy = strategy_module.MCMCStrategy(
            cap_max=model.num_gaussians, refine_start_iter=0, refine_stop_iter=int(config.densify_until * config.steps),
            refine_every=config.densify_every, min_opacity=config.prune_opacity)
        groups = {group.get("name"): group for group in optimizer.param_groups}
        self.optimizers = {name: _GroupAsOptimizer(optimizer, groups[name]) for name in GAUSSIAN_PARAMS}
        self.strategy_state = self.strategy.initialize_state()

    def after_backward(self) -> None:
        pass

    def after_step(self, step: int, means_lr: float) -> None:
        params = {name: getattr(self.model, attribute) for name, attribute in GAUSSIAN_PARAMS.items()}
        device = self.model.means.device
        # gsplat samples from the global generator: fork it, seeded by the step, for exact resumes.
        with torch.random.fork_rng(devices=[device]):
            torch.manual_seed(_step_seed(self.seed, step))
            self.strategy.step_post_backward(params, self.optimizers, self.strategy_state, step, {}, lr=means_lr)
        # Relocation wraps each tensor in a new Parameter (same storage); the model must hold the ones
        # the optimizer now steps.
        for name, attribute in GAUSSIAN_PARAMS.items():
            if params[name] is not getattr(self.model, attribute):
                setattr(self.model, attribute, params[name])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


DENSIFIERS = Registry("densifier", "avatar.densifier", {
    "mcmc": "perse.avatar.densify:GsplatMCMC",
    "relocate": "perse.avatar.densify:GradientRelocation",
}, auto=lambda device: "mcmc" if device == "cuda" else "relocate")
