"""A member's initial slow weights, drawn from its seed (docs/families.md, "Initialisation").

Shared by every implementation of the families, so that they start from the same numbers. One
`torch.Generator` seeded with the member's seed draws, in float64 and in a fixed order, every
tensor the model could use whatever its options (a seed means the same network everywhere); the
tensors an option switches off are then left out of the parameter dict. Uniform draws are in
`+-1/sqrt(fan_in)`, `fan_in` being the number of columns the tensor multiplies.
"""

from __future__ import annotations

import math

import torch

from .config import FastWeightsHyper, FastWeightsModel, FWPHyper, FWPModel


def _uniform(g: torch.Generator, shape, fan_in: int) -> torch.Tensor:
    bound = 1 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound


def init_fastweights(
    model: FastWeightsModel, vocab_size: int, hyper: FastWeightsHyper, dtype=torch.float64
) -> dict[str, torch.Tensor]:
    """{name: tensor} in parameter order: C, W, [ln_gain, ln_bias], W_out, b_out.

    Draws: C (H, V), then W_out (V, H), then b_out (V). W = identity_scale * I; the layer norm's
    gain is 1 and its bias 0 (present only with layer_norm).
    """
    H, V = model.hidden, vocab_size
    g = torch.Generator(device="cpu").manual_seed(hyper.seed)
    C = _uniform(g, (H, V), V)
    W_out = _uniform(g, (V, H), H)
    b_out = _uniform(g, (V,), H)
    params = {"C": C, "W": model.identity_scale * torch.eye(H, dtype=torch.float64)}
    if model.layer_norm:
        params["ln_gain"] = torch.ones(H, dtype=torch.float64)
        params["ln_bias"] = torch.zeros(H, dtype=torch.float64)
    params["W_out"] = W_out
    params["b_out"] = b_out
    return {k: v.to(dtype) for k, v in params.items()}


def fastweights_fast_names(model: FastWeightsModel) -> tuple[str, ...]:
    """The parameters that produce the hidden state h, and so write the fast matrix A."""
    return ("C", "W", "ln_gain", "ln_bias") if model.layer_norm else ("C", "W")


def init_fwp(model: FWPModel, vocab_size: int, hyper: FWPHyper, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """{name: tensor} in parameter order: E, then per layer l (0-based) `layers.l.W_Q`, `W_K`, `W_V`,
    [`w_b`], [`w_l`, `b_l`], `W_O`, then W_out, b_out.

    Draws: E (d_model, V); for each layer W_Q (d_k, d_model), W_K (d_k, d_model), W_V (d_v, d_model),
    w_b (d_model), w_l (d_model), W_O (d_model, d_v); then W_out (V, d_model), b_out (V). w_b is left
    out with rule 'hebb' (which has no eta), w_l unless decay is 'learned'; b_l (a scalar, present
    with decay 'learned') is logit(lambda), not drawn.
    """
    D, K, Dv, V = model.d_model, model.d_key, model.d_value, vocab_size
    g = torch.Generator(device="cpu").manual_seed(hyper.seed)
    params = {"E": _uniform(g, (D, V), V)}
    for l in range(model.layers):
        p = f"layers.{l}."
        W_Q = _uniform(g, (K, D), D)
        W_K = _uniform(g, (K, D), D)
        W_V = _uniform(g, (Dv, D), D)
        w_b = _uniform(g, (D,), D)
        w_l = _uniform(g, (D,), D)
        W_O = _uniform(g, (D, Dv), Dv)
        params[p + "W_Q"] = W_Q
        params[p + "W_K"] = W_K
        params[p + "W_V"] = W_V
        if model.rule != "hebb":
            params[p + "w_b"] = w_b
        if model.decay == "learned":
            params[p + "w_l"] = w_l
            params[p + "b_l"] = torch.tensor(math.log(hyper.lam / (1 - hyper.lam)), dtype=torch.float64)
        params[p + "W_O"] = W_O
    params["W_out"] = _uniform(g, (V, D), D)
    params["b_out"] = _uniform(g, (V,), D)
    return {k: v.to(dtype) for k, v in params.items()}


def fwp_fast_names(model: FWPModel, names) -> tuple[str, ...]:
    """The parameters that write the fast matrices directly: W_K, W_V, w_b, w_l, b_l of every layer."""
    suffixes = (".W_K", ".W_V", ".w_b", ".w_l", ".b_l")
    return tuple(n for n in names if n.startswith("layers.") and n.endswith(suffixes))


__all__ = ["init_fastweights", "fastweights_fast_names", "init_fwp", "fwp_fast_names"]
