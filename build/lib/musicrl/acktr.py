"""ACKTR: A2C whose step is preconditioned by Kronecker-factored curvature (K-FAC).

The thesis ran ikostrikov's ``pytorch-a2c-ppo-acktr-gail`` with ``--algo acktr``: its
``A2C_ACKTR`` update with a ``KFACOptimizer``. This module does that update on SB3's
feed-forward actor-critic (:class:`ACKTR` is SB3's ``A2C`` with :class:`KFAC` as its
optimizer and its ``train`` step replaced). The settings, all ikostrikov's defaults
(:data:`KFAC_SETTINGS`):

- every Linear layer of the policy (the 64-64 tanh actor and critic, the action and value
  heads) gets two Kronecker factors: ``A = E[a aᵀ]`` of its input and ``G = E[g gᵀ]`` of the
  gradient at its output (scaled by the batch size, as ``compute_cov_g``); the bias is a
  factor of its own with ``A = [[1]]`` (ikostrikov's ``SplitBias``), so its step is
  ``(G + λ)⁻¹ ∇b``;
- running averages with decay ``stat_decay = 0.99``, the first statistics taken as they are;
  ``A`` from the update's forward pass, ``G`` from the backward pass of the *sampled Fisher
  loss* ``-mean(log π(a|s)) - mean((V - (V + ε).detach())²)``, ``ε ~ N(0, 1)``, every
  ``Ts = 1`` update;
- eigen-decompositions of the factors every ``Tf = 10`` updates, eigenvalues below 1e-6 set
  to 0, damping ``λ = 1e-2``: the step is ``Q_G [(Q_Gᵀ ∇W Q_A) / (d_G d_Aᵀ + λ)] Q_Aᵀ``;
- the KL clip: with ``s = lr² Σ step·∇``, every step is scaled by ``ν = min(1, sqrt(kl_clip / s))``,
  ``kl_clip = 0.001``;
- SGD with momentum 0.9 and learning rate ``lr (1 - momentum) = 0.025`` (``lr = 0.25``), no
  gradient clipping, entropy coefficient 0.01 and value coefficient 0.5 as A2C.

Where this departs from ikostrikov's code (none changes a number): the layers keep their
bias (the factor ``[[1]]`` is applied directly instead of through a split module, so SB3's
saved weights keep their names); statistics are taken only inside :meth:`ACKTR.train` (in
ikostrikov's loop that is the only forward pass with gradients anyway);
``torch.linalg.eigh`` replaces the removed ``torch.symeig``; the state lives in the
optimizer's ``state_dict`` so that a checkpoint resumes exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import A2C

KFAC_SETTINGS: dict[str, float | int] = {
    "lr": 0.25, "momentum": 0.9, "stat_decay": 0.99, "kl_clip": 0.001, "damping": 1e-2, "Ts": 1, "Tf": 10,
}
EIGENVALUE_FLOOR = 1e-6


def running_average(old: torch.Tensor, new: torch.Tensor, decay: float) -> torch.Tensor:
    """ikostrikov's ``update_running_stat``: ``decay * old + (1 - decay) * new``."""
    return old * decay + new * (1 - decay)


def input_factor(a: torch.Tensor) -> torch.Tensor:
    """``A = aᵀ a / B`` for inputs ``a`` of shape (B, n_in); returns (n_in, n_in)."""
    return a.t() @ (a / a.shape[0])


def output_factor(g: torch.Tensor) -> torch.Tensor:
    """``G = (B g)ᵀ (B g) / B`` for output gradients ``g`` of shape (B, n_out) of a mean loss."""
    scaled = g * g.shape[0]
    return scaled.t() @ (scaled / g.shape[0])


def eigen(factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (those below 1e-6 set to 0) and eigenvectors of a symmetric factor."""
    values, vectors = torch.linalg.eigh(factor)
    return values * (values > EIGENVALUE_FLOOR).to(values.dtype), vectors


def precondition(grad: torch.Tensor, d_g: torch.Tensor, q_g: torch.Tensor, d_a: torch.Tensor, q_a: torch.Tensor,
                 damping: float) -> torch.Tensor:
    """``(G ⊗ A + λ)⁻¹`` applied to a weight gradient (n_out, n_in), in the factors' eigenbases."""
    inner = (q_g.t() @ grad @ q_a) / (d_g.unsqueeze(1) * d_a.unsqueeze(0) + damping)
    return q_g @ inner @ q_a.t()


class KFAC(torch.optim.Optimizer):
    """K-FAC preconditioned SGD with momentum over every ``torch.nn.Linear`` of ``model``
    (ikostrikov's ``KFACOptimizer``; see the module docstring).

    Statistics are recorded while :meth:`recording` is on (input factors, in the forward
    pass) and while :attr:`acc_stats` is true (output factors, in the backward pass).
    """

    def __init__(self, model: torch.nn.Module, lr: float = 0.25, momentum: float = 0.9, stat_decay: float = 0.99,
                 kl_clip: float = 0.001, damping: float = 1e-2, Ts: int = 1, Tf: int = 10) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        covered = {id(p) for layer in self.layers for p in layer.parameters()}
        params = [p for p in model.parameters() if p.requires_grad]
        if any(id(p) not in covered for p in params):
            raise ValueError("KFAC preconditions Linear layers only: the model has parameters outside them")
        defaults = {"lr": lr, "momentum": momentum, "stat_decay": stat_decay, "kl_clip": kl_clip, "damping": damping,
                    "Ts": Ts, "Tf": Tf, "kfac_steps": 0}
        super().__init__(params, defaults)
        self.acc_stats = False
        self._recording = False
        for layer in self.layers:
            layer.register_forward_hook(self._save_statistics)

    @property
    def settings(self) -> dict[str, Any]:
        return self.param_groups[0]

    @property
    def steps(self) -> int:
        return int(self.settings["kfac_steps"])

    def takes_statistics(self) -> bool:
        """Whether this update records statistics (every ``Ts`` updates)."""
        return self.steps % int(self.settings["Ts"]) == 0

    def recording(self, on: bool) -> None:
        self._recording = on

    def _update(self, layer: torch.nn.Linear, key: str, value: torch.Tensor) -> None:
        state = self.state[layer.weight]
        if key not in state:
            state[key] = value.clone()
        state[key] = running_average(state[key], value, self.settings["stat_decay"])

    def _save_statistics(self, layer: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not (self._recording and torch.is_grad_enabled() and self.takes_statistics()):
            return
        assert isinstance(layer, torch.nn.Linear)
        self._update(layer, "aa", input_factor(inputs[0].detach()))

        def on_gradient(grad: torch.Tensor) -> None:
            if self.acc_stats:
                self._update(layer, "gg", output_factor(grad.detach()))

        output.register_hook(on_gradient)

    def natural_gradients(self) -> dict[torch.Tensor, torch.Tensor]:
        """Each parameter's preconditioned gradient (refreshing the eigenbases every ``Tf`` steps)."""
        damping = self.settings["damping"]
        steps: dict[torch.Tensor, torch.Tensor] = {}
        for layer in self.layers:
            state = self.state[layer.weight]
            if self.steps % int(self.settings["Tf"]) == 0:
                state["d_a"], state["q_a"] = eigen(state["aa"])
                state["d_g"], state["q_g"] = eigen(state["gg"])
            assert layer.weight.grad is not None
            steps[layer.weight] = precondition(layer.weight.grad, state["d_g"], state["q_g"], state["d_a"],
                                               state["q_a"], damping)
            if layer.bias is not None and layer.bias.grad is not None:
                one = torch.ones(1, device=layer.bias.device, dtype=layer.bias.dtype)
                column = precondition(layer.bias.grad.unsqueeze(1), state["d_g"], state["q_g"], one,
                                      torch.ones(1, 1, device=one.device, dtype=one.dtype), damping)
                steps[layer.bias] = column.squeeze(1)
        return steps

    def kl_scale(self, steps: dict[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """``ν = min(1, sqrt(kl_clip / (lr² Σ step·∇)))``, a tensor (no host synchronisation)."""
        lr = self.settings["lr"]
        total = sum((step * p.grad * lr * lr).sum() for p, step in steps.items() if p.grad is not None)
        return torch.clamp(torch.sqrt(self.settings["kl_clip"] / torch.as_tensor(total)), max=1.0)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        steps = self.natural_gradients()
        nu = self.kl_scale(steps)
        group = self.settings
        rate = group["lr"] * (1 - group["momentum"])
        for p, step in steps.items():
            grad = step * nu
            state = self.state[p]
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.clone()
            else:
                buffer.mul_(group["momentum"]).add_(grad)
            p.add_(buffer, alpha=-rate)
        group["kfac_steps"] += 1


class ACKTR(A2C):
    """SB3's A2C with the K-FAC step (ikostrikov's ``A2C_ACKTR(acktr=True)``); build it with
    ``normalize_advantage=False`` and ``gae_lambda=1`` for the thesis's n-step returns."""

    def __init__(self, *args: Any, kfac: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.kfac = {**KFAC_SETTINGS, **(kfac or {})}
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.policy.optimizer = KFAC(self.policy, **self.kfac)

    def train(self) -> None:
        self.policy.set_training_mode(True)
        optimizer: KFAC = self.policy.optimizer  # type: ignore[assignment]
        data = next(self.rollout_buffer.get(batch_size=None))
        actions = data.actions.long().flatten() if isinstance(self.action_space, spaces.Discrete) else data.actions
        optimizer.recording(True)
        values, log_prob, entropy = self.policy.evaluate_actions(data.observations, actions)
        optimizer.recording(False)
        values = values.flatten()
        policy_loss = -(data.advantages * log_prob).mean()
        value_loss = F.mse_loss(data.returns, values)
        entropy_loss = -torch.mean(entropy) if entropy is not None else -torch.mean(-log_prob)
        if optimizer.takes_statistics():
            self.policy.zero_grad()
            noisy = values + torch.randn(values.size(), device=values.device)
            fisher_loss = -log_prob.mean() - (values - noisy.detach()).pow(2).mean()
            optimizer.acc_stats = True
            fisher_loss.backward(retain_graph=True)
            optimizer.acc_stats = False
        optimizer.zero_grad()
        (policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss).backward()
        optimizer.step()
        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
