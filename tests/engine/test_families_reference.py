"""Checks of the fast-weight families' reference (sweeper/engine/families/reference.py) against
docs/families.md.

The reference is the oracle of any faster implementation, so it is checked here against a second,
independently written restatement of the page (`fw_replica`, `fwp_replica`) that differs on purpose
in how it computes the fast state: `fastweights` reads A as attention to the past hidden states
(`A_(t-1) h = eta sum_tau lambda^(t-1-tau) h_tau (h_tau . h)`), `hebb` as decayed linear attention over
the whole sequence at once, the delta rules through the transition-matrix form
`W_t = W_(t-1) lambda_t (I - eta_t phi phi^T) + eta_t v phi^T`. Inputs are one-hot products, the
feature maps and layer norm are written from their formulas. Sizes are tiny and everything runs in
float64, so agreement is to ~1e-12.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sweeper.config import ConfigError, TrainConfig
from sweeper.engine.families.config import (
    FamilyRun,
    FastWeightsHyper,
    FastWeightsModel,
    FWPHyper,
    FWPModel,
)
from sweeper.engine.families.metrics import FAMILY_METRIC_NAMES
from sweeper.engine.families.reference import FastWeightsReference, FWPReference, make_reference
from sweeper.tasks import make_task

TOL = dict(rtol=1e-9, atol=1e-11)


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------
# Variants

FW_VARIANTS = [
    dict(inner_steps=S, layer_norm=ln, activation=act)
    for S, ln, act in itertools.product((1, 2), (True, False), ("relu", "tanh"))
]

RULE_DECAYS = [("hebb", "none"), ("hebb", "constant"), ("hebb", "learned"), ("delta", "none"),
               ("gated_delta", "constant"), ("gated_delta", "learned")]
# Every valid combination; psi is unused by hebb, so hebb takes sigmoid only.
FWP_VARIANTS = [
    dict(rule=r, decay=d, phi=phi, psi=psi)
    for (r, d), phi, psi in itertools.product(RULE_DECAYS, ("identity", "elu1", "silu_l2"), ("sigmoid", "2sigmoid"))
    if not (r == "hebb" and psi == "2sigmoid")
]
# A subset for the slower checks, with every option value at least once.
FWP_SUBSET = [
    dict(rule="hebb", decay="none", phi="identity", psi="sigmoid"),
    dict(rule="hebb", decay="constant", phi="elu1", psi="sigmoid"),
    dict(rule="hebb", decay="learned", phi="silu_l2", psi="sigmoid", layers=2),
    dict(rule="delta", decay="none", phi="identity", psi="2sigmoid"),
    dict(rule="delta", decay="none", phi="silu_l2", psi="sigmoid", layers=2),
    dict(rule="gated_delta", decay="constant", phi="elu1", psi="2sigmoid"),
    dict(rule="gated_delta", decay="learned", phi="silu_l2", psi="2sigmoid"),
    dict(rule="gated_delta", decay="learned", phi="identity", psi="sigmoid", layers=2),
]


def _vid(v: dict) -> str:
    return "-".join(f"{v[k]}" for k in sorted(v))


def fw_setup(variant, *, hidden=4, batch=2, eta=0.7, lam=0.8, lr=0.05, clip=math.inf, seed=3, optimizer="sgd",
             gap_max=2, n_values=3, dtype="float64", perturb=True):
    task = make_task("key_recall", gap_max=gap_max, n_values=n_values)
    run = FamilyRun(task, FastWeightsModel(hidden=hidden, **variant),
                    TrainConfig(updater="bptt", optimizer=optimizer, batch_size=batch, dtype=dtype))
    ref = FastWeightsReference(run, FastWeightsHyper(lr=lr, eta=eta, lam=lam, clip=clip, seed=seed))
    if perturb:  # make W and the layer norm generic (not 0.05 I, 1 and 0), so that every term shows
        g = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            ref.params["W"].copy_((torch.rand(hidden, hidden, generator=g, dtype=torch.float64) - 0.5).to(ref.dtype))
            if variant["layer_norm"]:
                ref.params["ln_gain"].copy_(1 + 0.3 * torch.rand(hidden, generator=g, dtype=torch.float64))
                ref.params["ln_bias"].copy_(0.2 * torch.rand(hidden, generator=g, dtype=torch.float64) - 0.1)
    return ref


def lam_for(variant) -> float:
    return 1.0 if variant["decay"] == "none" else 0.85


def fwp_setup(variant, *, d_model=3, d_key=2, d_value=2, batch=2, beta_scale=1.3, lr=0.05, clip=math.inf, seed=5,
              optimizer="sgd", gap_max=2, n_values=3, dtype="float64", lam=None):
    variant = dict(variant)
    layers = variant.pop("layers", 1)
    task = make_task("key_recall", gap_max=gap_max, n_values=n_values)
    model = FWPModel(d_model=d_model, d_key=d_key, d_value=d_value, layers=layers, **variant)
    run = FamilyRun(task, model, TrainConfig(updater="bptt", optimizer=optimizer, batch_size=batch, dtype=dtype))
    lam = lam_for(variant) if lam is None else lam
    return FWPReference(run, FWPHyper(lr=lr, beta_scale=beta_scale, lam=lam, clip=clip, seed=seed))


def params_copy(ref, requires_grad=False):
    return {k: v.detach().clone().requires_grad_(requires_grad) for k, v in ref.params.items()}


# ------------------------------------------------------------------------------------------------
# The independent restatement of docs/families.md


def onehot(x: int, V: int) -> torch.Tensor:
    e = torch.zeros(V, dtype=torch.float64)
    e[x] = 1.0
    return e


def fw_replica(p, model: FastWeightsModel, hyper: FastWeightsHyper, xs, V):
    """(logits (T, V), [A_(T-1)], []): the fast matrix as attention to the past hidden states."""
    f = torch.relu if model.activation == "relu" else torch.tanh
    H = model.hidden
    past = []  # h_0 .. h_(t-1)
    h_prev = torch.zeros(H, dtype=torch.float64)
    logits = []
    for t, x in enumerate(xs):
        pre = p["W"] @ h_prev + p["C"] @ onehot(x, V)
        hs = f(pre)
        for _ in range(model.inner_steps):
            att = torch.zeros(H, dtype=torch.float64)
            for tau, h_tau in enumerate(past):
                att = att + hyper.eta * hyper.lam ** (t - 1 - tau) * h_tau * torch.dot(h_tau, hs)
            a = pre + att
            if model.layer_norm:
                a = torch.nn.functional.layer_norm(a, (H,), p["ln_gain"], p["ln_bias"], eps=1e-5)
            hs = f(a)
        past.append(hs)
        h_prev = hs
        logits.append(p["W_out"] @ hs + p["b_out"])
    T = len(xs)
    A = sum(hyper.eta * hyper.lam ** (T - 1 - tau) * torch.outer(h, h) for tau, h in enumerate(past))
    return torch.stack(logits), [A], []


def phi_cols(kind: str, X: torch.Tensor) -> torch.Tensor:
    """The feature map applied to every column of X."""
    if kind == "identity":
        return X
    if kind == "elu1":
        return torch.where(X > 0, X + 1, torch.exp(X))
    s = X / (1 + torch.exp(-X))
    return s / torch.clamp(torch.sqrt((s * s).sum(dim=0, keepdim=True)), min=1e-12)


def fwp_replica(p, model: FWPModel, hyper: FWPHyper, xs, V):
    """(logits (T, V), [W^(l)_(T-1)], [eta_t ||phi(k_t)||^2]): layer by layer over the whole sequence."""
    T = len(xs)
    U = p["E"] @ torch.stack([onehot(x, V) for x in xs], dim=1)  # (d_model, T)
    finals, transitions = [], []
    for l in range(model.layers):
        def P(name, l=l):
            return p[f"layers.{l}.{name}"]

        PQ = phi_cols(model.phi, P("W_Q") @ U)
        PK = phi_cols(model.phi, P("W_K") @ U)
        Vs = P("W_V") @ U
        if model.decay == "none":
            lam = [torch.tensor(1.0, dtype=torch.float64)] * T
        elif model.decay == "constant":
            lam = [torch.tensor(hyper.lam, dtype=torch.float64)] * T
        else:
            lam = list(torch.sigmoid(P("w_l") @ U + P("b_l")))
        if model.rule == "hebb":
            # o_t = sum_(s <= t) (prod_(s < r <= t) lambda_r) v_s (phi(k_s) . phi(q_t))
            one, zero = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
            D = torch.stack([
                torch.stack([torch.prod(torch.stack([one, *lam[s + 1 : t + 1]])) if t >= s else zero for t in range(T)])
                for s in range(T)
            ])  # D[s, t] = prod_(s < r <= t) lambda_r for s <= t, else 0
            O = Vs @ (D * (PK.T @ PQ))
            finals.append(sum(D[s, T - 1] * torch.outer(Vs[:, s], PK[:, s]) for s in range(T)))
        else:
            psi = torch.sigmoid if model.psi == "sigmoid" else (lambda b: 2 * torch.sigmoid(b))
            eta = hyper.beta_scale * psi(P("w_b") @ U)
            I = torch.eye(model.d_key, dtype=torch.float64)
            W = torch.zeros(model.d_value, model.d_key, dtype=torch.float64)
            cols = []
            for t in range(T):
                pk = PK[:, t]
                W = W @ (lam[t] * (I - eta[t] * torch.outer(pk, pk))) + eta[t] * torch.outer(Vs[:, t], pk)
                cols.append(W @ PQ[:, t])
                transitions.append(float((eta[t] * (pk @ pk)).detach()))
            O = torch.stack(cols, dim=1)
            finals.append(W)
        U = U + P("W_O") @ O
    return (p["W_out"] @ U + p["b_out"][:, None]).T, finals, transitions


def replica(ref):
    return fw_replica if ref.family == "fastweights" else fwp_replica


def replica_batch(ref, p, tokens):
    """The objective J, each sequence's outputs, from the replica."""
    outs = [replica(ref)(p, ref.model, ref.hyper, seq[:-1], ref.V) for seq in tokens]
    J = 0
    for seq, (logits, _, _) in zip(tokens, outs):
        y = torch.tensor(seq[1:])
        J = J + (-torch.log_softmax(logits, dim=1)[torch.arange(len(y)), y]).sum()
    return J / len(tokens), outs


FW_FAST = {"C", "W", "ln_gain", "ln_bias"}


def is_fast(ref, name: str) -> bool:
    """docs/families.md's parameters that produce the fast state."""
    if ref.family == "fastweights":
        return name in FW_FAST
    return name.startswith("layers.") and name.rsplit(".", 1)[1] in {"W_K", "W_V", "w_b", "w_l", "b_l"}


# ------------------------------------------------------------------------------------------------
# (a) the fast-state recurrence against closed forms


@pytest.mark.parametrize("variant", FW_VARIANTS, ids=_vid)
def test_fastweights_recurrence_is_attention_to_the_past(variant):
    ref = fw_setup(variant)
    tokens, _ = ref.sample(0)
    p = params_copy(ref)
    with torch.no_grad():
        for seq in tokens:
            out = ref.sequence(seq[:-1], trace=True)
            logits, (A,), _ = fw_replica(p, ref.model, ref.hyper, seq[:-1], ref.V)
            torch.testing.assert_close(out.logits, logits, **TOL)
            torch.testing.assert_close(out.fast[0], A, **TOL)
            assert float(A.norm()) > 0.1  # the test is not vacuous
            # the matrix read at character t holds h_0 .. h_(t-1) only
            for t, rec in enumerate(out.trace):
                h = ref.hyper
                expect = torch.zeros_like(A)
                for tau, r in enumerate(out.trace[:t]):
                    expect = expect + h.eta * h.lam ** (t - 1 - tau) * torch.outer(r["h"], r["h"])
                torch.testing.assert_close(rec["A_before"], expect, **TOL)
                assert len(rec["inner"]) == ref.model.inner_steps + 1
                f = torch.relu if variant["activation"] == "relu" else torch.tanh
                torch.testing.assert_close(rec["inner"][0], f(rec["pre"]), **TOL)  # h^(0): no layer norm


@pytest.mark.parametrize("variant", FWP_VARIANTS + [dict(v, layers=2) for v in FWP_SUBSET if "layers" not in v][:3], ids=_vid)
def test_fwp_recurrence_against_closed_forms(variant):
    ref = fwp_setup(variant)
    tokens, _ = ref.sample(0)
    p = params_copy(ref)
    with torch.no_grad():
        for seq in tokens:
            out = ref.sequence(seq[:-1], trace=True)
            logits, finals, transitions = fwp_replica(p, ref.model, ref.hyper, seq[:-1], ref.V)
            torch.testing.assert_close(out.logits, logits, **TOL)
            for W, Wr in zip(out.fast, finals):
                torch.testing.assert_close(W, Wr, **TOL)
                assert float(Wr.norm()) > 1e-3
            # the reference records character by character, the replica layer by layer
            assert sorted(float(x) for x in out.transition) == pytest.approx(sorted(transitions), rel=1e-10)


@pytest.mark.parametrize("variant", [v for v in FWP_VARIANTS if v["rule"] != "hebb"], ids=_vid)
def test_delta_transition_eigenvalue(variant):
    """Along n = phi(k)/||phi(k)|| the state is multiplied by lambda_t (1 - eta_t ||phi(k)||^2) (plus the
    write eta_t ||phi(k)|| v); orthogonally to phi(k) by lambda_t."""
    ref = fwp_setup(variant, d_key=3)
    tokens, _ = ref.sample(0)
    g = torch.Generator().manual_seed(0)
    checked = 0
    with torch.no_grad():
        for seq in tokens:
            out = ref.sequence(seq[:-1], trace=True)
            for step in out.trace[1:]:
                for rec in step:
                    pk, lam, eta = rec["phi_k"], rec["lam"], rec["eta"]
                    norm = torch.linalg.vector_norm(pk)
                    n = pk / norm
                    lhs = rec["W"] @ n
                    rhs = lam * (1 - eta * norm**2) * (rec["W_before"] @ n) + eta * norm * rec["v"]
                    torch.testing.assert_close(lhs, rhs, **TOL)
                    r = torch.rand(ref.model.d_key, generator=g, dtype=torch.float64)
                    m = r - (r @ n) * n
                    torch.testing.assert_close(rec["W"] @ m, lam * (rec["W_before"] @ m), **TOL)
                    if ref.model.decay == "none":
                        assert lam == 1.0
                    checked += float(rec["W_before"].norm()) > 0
    assert checked > 5


def test_hebb_without_decay_is_a_sum_of_outer_products():
    ref = fwp_setup(dict(rule="hebb", decay="none", phi="elu1", psi="sigmoid"))
    tokens, _ = ref.sample(0)
    with torch.no_grad():
        out = ref.sequence(tokens[0][:-1], trace=True)
    S = sum(torch.outer(step[0]["v"], step[0]["phi_k"]) for step in out.trace)
    torch.testing.assert_close(out.fast[0], S, **TOL)


# ------------------------------------------------------------------------------------------------
# (b) autograd against finite differences; the step and the metrics against their definitions


def _gradcheck(ref):
    tokens, _ = ref.sample(0)
    names = list(ref.params)
    inputs = tuple(params_copy(ref, requires_grad=True)[n] for n in names)

    def J(*ps):
        return ref.objective(tokens, dict(zip(names, ps)))[0]

    assert torch.autograd.gradcheck(J, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("variant", FW_VARIANTS, ids=_vid)
def test_fastweights_gradients_match_finite_differences(variant):
    _gradcheck(fw_setup(variant, hidden=3, batch=1, gap_max=1, n_values=2))


@pytest.mark.parametrize("variant", FWP_SUBSET, ids=_vid)
def test_fwp_gradients_match_finite_differences(variant):
    _gradcheck(fwp_setup(variant, d_model=2, batch=1, gap_max=1, n_values=2))


STEP_CASES = [
    ("fastweights", dict(inner_steps=2, layer_norm=True, activation="relu"), 0.05),
    ("fastweights", dict(inner_steps=1, layer_norm=False, activation="tanh"), math.inf),
    ("fwp", dict(rule="hebb", decay="constant", phi="elu1", psi="sigmoid", layers=2), 0.05),
    ("fwp", dict(rule="delta", decay="none", phi="identity", psi="2sigmoid"), math.inf),
    ("fwp", dict(rule="gated_delta", decay="learned", phi="silu_l2", psi="2sigmoid", layers=2), 0.05),
]


@pytest.mark.parametrize("family,variant,clip", STEP_CASES, ids=lambda x: _vid(x) if isinstance(x, dict) else str(x))
def test_step_and_metrics_follow_their_definitions(family, variant, clip):
    lr = 0.05
    ref = (fw_setup if family == "fastweights" else fwp_setup)(variant, clip=clip, lr=lr, batch=3)
    tokens, memory = ref.sample(0)
    p = params_copy(ref, requires_grad=True)
    J, outs = replica_batch(ref, p, tokens)
    grads = dict(zip(p, torch.autograd.grad(J, list(p.values()), allow_unused=True)))
    grads = {k: torch.zeros_like(p[k]) if g is None else g for k, g in grads.items()}
    m = ref.train_batch()
    assert list(m) == list(FAMILY_METRIC_NAMES)

    fast = [k for k in p if is_fast(ref, k)]
    rest = [k for k in p if not is_fast(ref, k)]
    assert set(fast) == set(ref.fast_names) and fast
    gf = math.sqrt(sum(float((grads[k] ** 2).sum()) for k in fast))
    gr = math.sqrt(sum(float((grads[k] ** 2).sum()) for k in rest))
    total = math.sqrt(gf**2 + gr**2)
    scale = min(1.0, clip / (total + 1e-6))
    if clip != math.inf:
        assert scale < 1  # the clip binds
    new = {k: p[k].detach() - lr * scale * grads[k] for k in p}
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(v, new[k], **TOL)

    n = correct = mem_n = mem_correct = 0
    loss_sum, max_logit, fast_sq, trans = 0.0, 0.0, [], []
    for seq, mem, (logits, finals, transitions) in zip(tokens, memory, outs):
        logits = logits.detach()
        for t, y in enumerate(seq[1:]):
            n += 1
            loss_sum += float(-torch.log_softmax(logits[t], 0)[y])
            right = int(logits[t].argmax()) == y
            correct += right
            mem_n += mem[t]
            mem_correct += right and mem[t]
        max_logit = max(max_logit, float(logits.abs().max()))
        fast_sq.append(sum(float((W.detach() ** 2).sum()) for W in finals))
        trans += transitions
    n_fast = sum(p[k].numel() for k in fast)
    n_rest = sum(p[k].numel() for k in rest)
    expected = {
        "loss": loss_sum / n,
        "acc": correct / n,
        "mem_acc": mem_correct / mem_n,
        "max_logit": max_logit,
        "w_slow": math.sqrt(sum(float((v**2).sum()) for v in new.values())),
        "fast_norm": math.sqrt(sum(fast_sq) / len(fast_sq)),
        "grad_fast": gf,
        "grad_rest": gr,
        "grad_fast_ratio": gf / gr,
        "grad_fast_rms_ratio": (gf / math.sqrt(n_fast)) / (gr / math.sqrt(n_rest)),
        "transition_max": max(trans) if trans else math.nan,
    }
    for k in FAMILY_METRIC_NAMES:
        if math.isnan(expected[k]):
            assert math.isnan(m[k]), k
        else:
            assert m[k] == pytest.approx(expected[k], rel=1e-9, abs=1e-12), k


# ------------------------------------------------------------------------------------------------
# (e) transition_max against an independent computation


@pytest.mark.parametrize("variant", FWP_SUBSET, ids=_vid)
def test_transition_max_is_the_largest_eta_phi_k_squared(variant):
    ref = fwp_setup(variant, beta_scale=2.5, batch=3)
    tokens, _ = ref.sample(0)
    p = params_copy(ref)
    with torch.no_grad():
        values = []
        for seq in tokens:
            values += fwp_replica(p, ref.model, ref.hyper, seq[:-1], ref.V)[2]
    m = ref.train_batch()
    if variant["rule"] == "hebb":
        assert math.isnan(m["transition_max"]) and values == []
    else:
        assert len(values) == 3 * ref.T * ref.model.layers
        assert m["transition_max"] == pytest.approx(max(values), rel=1e-12)


def test_fastweights_has_no_transition_max():
    assert math.isnan(fw_setup(FW_VARIANTS[0]).train_batch()["transition_max"])


# ------------------------------------------------------------------------------------------------
# (c) determinism


@pytest.mark.parametrize("family", ["fastweights", "fwp"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_determinism(family, dtype):
    def make(seed):
        if family == "fastweights":
            return fw_setup(FW_VARIANTS[1], seed=seed, optimizer="adam", dtype=dtype, perturb=False)
        return fwp_setup(FWP_SUBSET[-1], seed=seed, optimizer="adam", dtype=dtype)

    a, b, c = make(7), make(7), make(8)
    ma = [a.train_batch() for _ in range(3)]
    ev = a.evaluate(2)
    assert set(ev) == {"loss", "acc", "mem_acc"} and math.isfinite(ev["loss"])
    mb = [b.train_batch() for _ in range(3)]
    for x, y in zip(ma, mb):
        assert list(x) == list(FAMILY_METRIC_NAMES)
        for k in x:
            assert (math.isnan(x[k]) and math.isnan(y[k])) or x[k] == y[k], k
    for k, v in a.state_dict().items():
        assert v.dtype == getattr(torch, dtype)
        assert torch.equal(v, b.state_dict()[k])
    c.train_batch()
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    # evaluate does not touch the training state
    before = a.state_dict()
    a.evaluate(1)
    assert all(torch.equal(v, a.state_dict()[k]) for k, v in before.items())


def test_seed_draws_the_documented_initialization():
    task = make_task("associative", pairs=2)
    V = len(task.vocab)
    run = FamilyRun(task, FastWeightsModel(hidden=5), TrainConfig(updater="bptt"))
    sd = FastWeightsReference(run, FastWeightsHyper(seed=11)).state_dict()
    g = torch.Generator().manual_seed(11)
    u = lambda shape, fan: (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(fan)  # noqa: E731
    expect = {"C": u((5, V), V)}
    W_out, b_out = u((V, 5), 5), u((V,), 5)
    expect.update(W=0.05 * torch.eye(5, dtype=torch.float64), ln_gain=torch.ones(5, dtype=torch.float64),
                  ln_bias=torch.zeros(5, dtype=torch.float64), W_out=W_out, b_out=b_out)
    assert list(sd) == list(expect)
    for k in sd:
        torch.testing.assert_close(sd[k], expect[k].float(), rtol=0, atol=0)

    model = FWPModel(d_model=3, d_key=2, d_value=4, rule="gated_delta", decay="learned")
    run = FamilyRun(task, model, TrainConfig(updater="bptt"))
    sd = FWPReference(run, FWPHyper(seed=11, lam=0.9)).state_dict()
    g = torch.Generator().manual_seed(11)
    E = u((3, V), V)
    WQ, WK, WV, wb, wl, WO = u((2, 3), 3), u((2, 3), 3), u((4, 3), 3), u((3,), 3), u((3,), 3), u((3, 4), 4)
    W_out, b_out = u((V, 3), 3), u((V,), 3)
    expect = {"E": E, "layers.0.W_Q": WQ, "layers.0.W_K": WK, "layers.0.W_V": WV, "layers.0.w_b": wb,
              "layers.0.w_l": wl, "layers.0.b_l": torch.tensor(math.log(0.9 / 0.1), dtype=torch.float64),
              "layers.0.W_O": WO, "W_out": W_out, "b_out": b_out}
    assert list(sd) == list(expect)
    for k in sd:
        torch.testing.assert_close(sd[k], expect[k].float(), rtol=0, atol=0)
    # hebb without decay has neither w_b nor w_l, b_l; the drawn tensors it keeps are the same
    run = FamilyRun(task, FWPModel(d_model=3, d_key=2, d_value=4, rule="hebb"), TrainConfig(updater="bptt"))
    sd2 = FWPReference(run, FWPHyper(seed=11)).state_dict()
    assert list(sd2) == ["E", "layers.0.W_Q", "layers.0.W_K", "layers.0.W_V", "layers.0.W_O", "W_out", "b_out"]
    assert all(torch.equal(sd2[k], sd[k]) for k in sd2)


# ------------------------------------------------------------------------------------------------
# (d) refusals name the field


KR = make_task("key_recall")
BPTT = TrainConfig(updater="bptt")
BAD = [
    (lambda: FastWeightsHyper(eta=-0.1), "eta"),
    (lambda: FastWeightsHyper(lam=0), "lambda"),
    (lambda: FastWeightsHyper(lam=1.5), "lambda"),
    (lambda: FastWeightsHyper(lr=0), "lr"),
    (lambda: FastWeightsHyper(clip=0), "clip"),
    (lambda: FastWeightsHyper(clip=math.nan), "clip"),
    (lambda: FastWeightsHyper(seed=-1), "seed"),
    (lambda: FastWeightsHyper(eta=True), "eta"),
    (lambda: FWPHyper(beta_scale=0), "beta_scale"),
    (lambda: FWPHyper(lam=1.01), "lambda"),
    (lambda: FWPHyper(lr=-1), "lr"),
    (lambda: FastWeightsHyper.from_axes({"lambda": 2}), "lambda"),
    (lambda: FWPHyper.from_axes({"gamma": 0.5}), "gamma"),
    (lambda: FastWeightsModel(hidden=1), "model.hidden"),
    (lambda: FastWeightsModel(inner_steps=0), "model.inner_steps"),
    (lambda: FastWeightsModel(activation="gelu"), "model.activation"),
    (lambda: FastWeightsModel(layer_norm=1), "model.layer_norm"),
    (lambda: FastWeightsModel(identity_scale=-1), "model.identity_scale"),
    (lambda: FWPModel(phi="relu"), "model.phi"),
    (lambda: FWPModel(psi="tanh"), "model.psi"),
    (lambda: FWPModel(rule="oja"), "model.rule"),
    (lambda: FWPModel(decay="sometimes"), "model.decay"),
    (lambda: FWPModel(rule="delta", decay="constant"), "model.decay"),
    (lambda: FWPModel(rule="gated_delta", decay="none"), "model.decay"),
    (lambda: FWPModel(layers=0), "model.layers"),
    (lambda: FWPModel(d_key=0), "model.d_key"),
    (lambda: FamilyRun(KR, FWPModel(), TrainConfig(updater="dfa")), "train.updater"),
    (lambda: FamilyRun(KR, FWPModel(), TrainConfig(updater="bptt", grad_clip=1.0)), "train.grad_clip"),
    (lambda: FamilyRun(KR, FWPModel(), TrainConfig(updater="bptt", reset_every=2)), "train.reset_every"),
    (lambda: FamilyRun(KR, object(), BPTT), "model"),
    (lambda: FamilyRun(KR, FWPModel(decay="none"), BPTT).check_hyper(FWPHyper(lam=0.9)), "lambda"),
    (lambda: FamilyRun(KR, FWPModel(rule="hebb", decay="learned"), BPTT).check_hyper(FWPHyper(lam=1.0)), "lambda"),
    (lambda: FamilyRun(KR, FWPModel(), BPTT).check_hyper(FastWeightsHyper(), 2), "members[2].hyper"),
    (lambda: FWPReference(FamilyRun(KR, FastWeightsModel(), BPTT), FastWeightsHyper()), "model"),
]


@pytest.mark.parametrize("make,field", BAD, ids=[b[1] + f"#{i}" for i, b in enumerate(BAD)])
def test_bad_configuration_is_refused_by_name(make, field):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.field == field
    assert err.value.message


def test_lambda_axis_maps_to_field_lam():
    h = FWPHyper.from_axes({"lr": 0.01, "beta_scale": 2.0, "lambda": 0.9, "clip": 1.0, "seed": 4})
    assert h == FWPHyper(lr=0.01, beta_scale=2.0, lam=0.9, clip=1.0, seed=4)
    assert FastWeightsHyper.from_axes({"eta": 0.25, "lambda": 1}).lam == 1.0


# ------------------------------------------------------------------------------------------------
# (f) a short training run learns


@pytest.mark.parametrize(
    "family,variant",
    [
        ("fastweights", dict(inner_steps=1, layer_norm=True, activation="relu")),
        ("fwp", dict(rule="delta", decay="none", phi="silu_l2", psi="sigmoid")),
        ("fwp", dict(rule="hebb", decay="constant", phi="elu1", psi="sigmoid")),
        ("fwp", dict(rule="gated_delta", decay="learned", phi="silu_l2", psi="2sigmoid")),
    ],
    ids=lambda x: _vid(x) if isinstance(x, dict) else x,
)
def test_short_training_decreases_the_loss(family, variant):
    task = make_task("key_recall", gap_max=2, n_values=3)
    train = TrainConfig(updater="bptt", optimizer="adam", batch_size=4, dtype="float32")
    if family == "fastweights":
        run = FamilyRun(task, FastWeightsModel(hidden=16, **variant), train)
        hyper = FastWeightsHyper(lr=3e-2, clip=1.0, seed=1)
    else:
        run = FamilyRun(task, FWPModel(d_model=16, d_key=8, d_value=8, **variant), train)
        hyper = FWPHyper(lr=3e-2, clip=1.0, seed=1, lam=lam_for(variant))
    losses = [m["loss"] for m in make_reference(run, hyper).train(25)]
    assert all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, (first, last)
