"""A member's initial network, drawn from its seed (docs/engine.md, "Initialisation").

Shared by the population engine and the reference loop: both must start from the same numbers, so
that any later difference is a difference in the dynamics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import Hyper, ModelConfig


@dataclass
class MemberInit:
    """Dense initial tensors of one member. Index 0..L-1 are the hidden layers."""

    W: list[torch.Tensor]  # (n_l, n_{l-1}); zero at ephemeral positions
    b: list[torch.Tensor]  # (n_l,)
    W_out: torch.Tensor  # (V, n_L)
    b_out: torch.Tensor  # (V,)
    mask: list[torch.Tensor]  # (n_l, n_{l-1}) bool: ephemeral entries
    feedback: list[torch.Tensor]  # (n_l, V): DFA's fixed random matrices


def layer_sizes(model: ModelConfig, vocab_size: int) -> list[tuple[int, int]]:
    """(fan_out, fan_in) of each hidden layer."""
    n_in = vocab_size + (model.width if model.recurrence else 0)
    sizes = []
    for _ in range(model.depth):
        sizes.append((model.width, n_in))
        n_in = model.width
    return sizes


def init_member(model: ModelConfig, vocab_size: int, hyper: Hyper, dtype=torch.float64) -> MemberInit:
    g = torch.Generator(device="cpu").manual_seed(hyper.seed)

    def uniform(shape, bound):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound

    sizes = layer_sizes(model, vocab_size)
    W, b = [], []
    for n_out, n_in in sizes:
        W.append(uniform((n_out, n_in), 1 / math.sqrt(n_in)))
        b.append(uniform((n_out,), 1 / math.sqrt(n_in)))
    W_out = uniform((vocab_size, model.width), 1 / math.sqrt(model.width))
    b_out = uniform((vocab_size,), 1 / math.sqrt(model.width))
    ratio = hyper.ratio if model.kind == "ephemeral" else 0.0
    masks = []
    for (n_out, n_in), w in zip(sizes, W):
        perm = torch.randperm(n_out * n_in, generator=g)
        mask = torch.zeros(n_out * n_in, dtype=torch.bool)
        mask[perm[: round(ratio * n_out * n_in)]] = True
        mask = mask.view(n_out, n_in)
        w[mask] = 0.0
        masks.append(mask)
    feedback = [uniform((n_out, vocab_size), 1 / math.sqrt(vocab_size)) for n_out, _ in sizes]
    cast = lambda t: t.to(dtype)  # noqa: E731
    return MemberInit(
        W=[cast(w) for w in W],
        b=[cast(x) for x in b],
        W_out=cast(W_out),
        b_out=cast(b_out),
        mask=masks,
        feedback=[cast(f) for f in feedback],
    )
