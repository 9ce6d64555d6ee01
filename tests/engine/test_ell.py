"""The native ephemeral kernels: where the compiled library may be loaded from, how the compiler is
named, the checks on every argument passed to C, and the float32 kernels against dense products."""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import stat
import warnings

import pytest
import torch

from sweeper.config import Hyper, ModelConfig, RunConfig, TrainConfig
from sweeper.engine import ell
from sweeper.engine.population import Population
from sweeper.engine.reference import Reference
from sweeper.tasks import make_task

needs_cc = pytest.mark.skipif(
    os.environ.get("SWEEPER_NATIVE") == "0" or os.name != "posix"
    or not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")),
    reason="no C compiler (or SWEEPER_NATIVE=0): the native kernels are not built")
needs_root = pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0,
                                reason="giving a directory to another user needs root")
OTHER_UID = 65534  # nobody


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache directory of this test's own (not created yet), and no library loaded in this process."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SWEEPER_CACHE_DIR", str(path))
    monkeypatch.delenv("SWEEPER_NATIVE", raising=False)
    monkeypatch.setattr(ell, "_lib", ell._NOT_LOADED)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A library built once for this module with the default compiler: copied where a test needs one."""
    directory = tmp_path_factory.mktemp("built")
    os.chmod(directory, 0o700)
    return ell._compile(directory, ell._compiler())


@pytest.fixture
def loads(monkeypatch):
    """The paths handed to ctypes.CDLL during the test."""
    seen = []
    real = ctypes.CDLL

    def spy(name, *args, **kwargs):
        seen.append(str(name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", spy)
    return seen


def native_warnings(fn):
    """fn()'s result and the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught]


def plant(built, directory, mode=0o700):
    """`directory` (created with `mode`) holding a copy of the library under the name the loader looks for."""
    directory.mkdir(exist_ok=True)
    os.chmod(directory, mode)
    copy = directory / built.name
    shutil.copy2(built, copy)
    return copy


def trains_like_the_reference(batches=3):
    """A small population trains; each member's metrics match the reference loop."""
    run = RunConfig(task=make_task("key_recall", gap_min=1, gap_max=2),
                    model=ModelConfig(kind="ephemeral", depth=2, width=10, recurrence=True),
                    train=TrainConfig(updater="backprop", batch_size=3, batches=batches, metrics_every=1,
                                      stop_on_explosion=False))
    members = [Hyper(lr=3e-3, plasticity=300, ratio=0.1, gamma=0.7, seed=0),
               Hyper(lr=1e-2, plasticity=100, ratio=0.2, gamma=0.5, seed=1)]
    pop, refs = Population(run, members), [Reference(run, h) for h in members]
    for step in range(batches):
        m = pop.step()
        for p, ref in enumerate(refs):
            expected = ref.train_batch()
            for name in ("loss", "acc", "grad_eph", "w_eph"):
                assert m.for_member(p)[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-7), \
                    f"batch {step}, member {p}, {name}"
    return pop


# ------------------------------------------------------------------------------------ the cache


@needs_cc
def test_a_new_cache_directory_is_private_whatever_the_umask(cache, loads):
    old = os.umask(0)
    try:
        lib, messages = native_warnings(ell._native)
    finally:
        os.umask(old)
    assert lib is not None and messages == []
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o700
    (so,) = cache.glob("ell_*.so")
    assert stat.S_IMODE(os.lstat(so).st_mode) & 0o022 == 0
    assert loads == [str(so)]
    assert [p.name for p in cache.iterdir()] == [so.name]  # the build directory is gone


def test_the_default_cache_is_the_users_cache_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("SWEEPER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ell._cache_dir() == tmp_path / "sweeper" / "kernels"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored, as XDG says
    assert ell._cache_dir() == ell.Path.home() / ".cache" / "sweeper" / "kernels"
    monkeypatch.setenv("SWEEPER_CACHE_DIR", str(tmp_path / "mine"))
    assert ell._cache_dir() == tmp_path / "mine"


@needs_cc
@pytest.mark.parametrize("mode,reason", [(0o777, "0777"), (0o750, "0750"), (0o701, "0701")],
                         ids=["0777", "0750", "0701"])
def test_a_cache_directory_open_to_others_is_not_used(cache, built, loads, mode, reason):
    planted = plant(built, cache, mode)
    pop, messages = native_warnings(trains_like_the_reference)  # the engine falls back to the torch ops
    assert loads == []
    assert all(lay.backend == "torch" for lay in pop.layout)
    assert len(messages) == 1 and str(cache) in messages[0] and reason in messages[0]
    assert sorted(cache.iterdir()) == [planted]  # nothing was built there either


@needs_cc
@needs_root
def test_a_cache_directory_owned_by_another_user_is_not_used(cache, built, loads):
    plant(built, cache)
    os.chown(cache, OTHER_UID, OTHER_UID)
    lib, messages = native_warnings(ell._native)
    assert lib is None and loads == []
    assert len(messages) == 1 and str(cache) in messages[0] and f"owned by uid {OTHER_UID}" in messages[0]
    trains_like_the_reference()


@needs_cc
def test_a_cache_directory_that_is_a_symlink_is_not_used(cache, built, loads, tmp_path):
    plant(built, tmp_path / "elsewhere")
    cache.symlink_to(tmp_path / "elsewhere")
    lib, messages = native_warnings(ell._native)
    assert lib is None and loads == []
    assert len(messages) == 1 and str(cache) in messages[0] and "symbolic link" in messages[0]


@needs_cc
@pytest.mark.parametrize("parent_mode,used", [(0o777, False), (0o1777, True), (0o755, True)],
                         ids=["anyone-writes", "sticky", "private"])
def test_a_cache_directory_in_a_parent_anyone_may_write_is_used_only_with_the_sticky_bit(
        tmp_path, monkeypatch, built, loads, parent_mode, used):
    parent = tmp_path / "shared"
    parent.mkdir()
    os.chmod(parent, parent_mode)
    cache = parent / "cache"
    monkeypatch.setenv("SWEEPER_CACHE_DIR", str(cache))
    monkeypatch.setattr(ell, "_lib", ell._NOT_LOADED)
    planted = plant(built, cache)
    lib, messages = native_warnings(ell._native)
    if used:
        assert lib is not None and messages == [] and loads == [str(planted)]
    else:
        assert lib is None and loads == []
        assert len(messages) == 1 and str(cache) in messages[0] and "parent directory" in messages[0]


@needs_cc
def test_a_library_others_may_write_is_not_loaded(cache, built, loads):
    planted = plant(built, cache)
    os.chmod(planted, 0o766)
    lib, messages = native_warnings(ell._native)
    assert lib is None and loads == []
    assert len(messages) == 1 and str(planted) in messages[0] and "0766" in messages[0]
    trains_like_the_reference()


@needs_cc
@needs_root
def test_a_library_owned_by_another_user_is_not_loaded(cache, built, loads):
    planted = plant(built, cache)
    os.chown(planted, OTHER_UID, OTHER_UID)
    lib, messages = native_warnings(ell._native)
    assert lib is None and loads == []
    assert len(messages) == 1 and str(planted) in messages[0] and f"owned by uid {OTHER_UID}" in messages[0]


@needs_cc
def test_a_library_that_is_a_symlink_is_not_loaded(cache, built, loads):
    cache.mkdir(mode=0o700)
    (cache / built.name).symlink_to(built)
    lib, messages = native_warnings(ell._native)
    assert lib is None and loads == []
    assert len(messages) == 1 and "symbolic link" in messages[0]


@needs_cc
def test_a_library_in_a_private_cache_is_loaded_without_rebuilding(cache, built, loads):
    planted = plant(built, cache)
    lib, messages = native_warnings(ell._native)
    assert lib is not None and messages == [] and loads == [str(planted)]
    assert sorted(cache.iterdir()) == [planted]


# ------------------------------------------------------------------------------------ the compiler


@needs_cc
def test_cc_may_carry_arguments_and_each_argv_has_its_own_library(cache, monkeypatch, tmp_path):
    compiler = ell._compiler()[0]
    spaced = tmp_path / "a bin" / "cc"  # a path with a space, quoted as a shell would
    spaced.parent.mkdir()
    spaced.symlink_to(shutil.which(compiler) or compiler)
    libraries = set()
    for cc in (f"{compiler} -DSWEEPER_UNUSED=1", f"env {compiler}", f"{shlex.quote(str(spaced))} -O1"):
        monkeypatch.setenv("CC", cc)
        monkeypatch.setattr(ell, "_lib", ell._NOT_LOADED)
        assert ell._compiler() == shlex.split(cc)
        lib, messages = native_warnings(ell._native)
        assert lib is not None and messages == [], (cc, messages)
        libraries.add(lib._name)
        layout_products_match_dense(torch.float32, B=9)
    assert len(libraries) == 3 and len(list(cache.glob("ell_*.so"))) == 3


def test_a_cc_that_does_not_parse_falls_back_with_a_warning(cache, monkeypatch):
    monkeypatch.setenv("CC", "gcc 'unterminated")
    lib, messages = native_warnings(ell._native)
    assert lib is None and len(messages) == 1 and "CC=" in messages[0]
    assert not cache.exists()


def test_a_cc_that_fails_falls_back_with_a_warning(cache, monkeypatch):
    monkeypatch.setenv("CC", "false")
    lib, messages = native_warnings(ell._native)
    assert lib is None and len(messages) == 1 and "could not build" in messages[0]
    assert list(cache.iterdir()) == []  # the failed build left nothing


# ------------------------------------------------------------------------------------ argument checks


def layout(dtype=torch.float32, P=3, n_out=5, n_in=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(P, n_out, n_in, generator=g) < 0.4
    masks[1, 2] = False  # a row without entries
    lay = ell.Layout(masks, dtype)
    if lay.backend != "native":
        pytest.skip("no C compiler: the native kernels are not built")
    return lay, masks, g


def operands(lay, dtype, B, g, chars=1):
    """E, h, d, scale, gamma, clip for layout `lay`, with B sequences."""
    P, n_in, n_out = lay.P, lay.n_in, lay.n_out
    E = torch.randn(lay.N, B, generator=g, dtype=dtype) * 0.1
    h = torch.randn(P, n_in, chars * B, generator=g, dtype=dtype)
    d = torch.randn(P, n_out, chars * B, generator=g, dtype=dtype)
    per = lambda lo, hi: lay.per_entry(torch.empty(P, dtype=dtype).uniform_(lo, hi, generator=g))  # noqa: E731
    return E, h, d, per(-0.5, -0.1), per(0.5, 1.0), per(0.05, 0.2)


def dense(lay, masks, E):
    """E (N, B) as the dense (P, n_out, n_in, B) ephemeral matrices, 0 off the mask."""
    out = E.new_zeros(*masks.shape, E.shape[1])
    out[masks] = E
    return out


def layout_products_match_dense(dtype, B, chars=3):
    """Each kernel against its dense masked formula, computed in float64."""
    lay, masks, g = layout(dtype)
    M = masks.double()
    E, h, d, scale, gamma, clip = operands(lay, dtype, B, g, chars)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-14)
    D = dense(lay, masks, E.double())  # (P, n_out, n_in, B)
    h1, d1 = h[..., :B].contiguous(), d[..., :B].contiguous()

    out = torch.randn(lay.P, lay.n_out, B, generator=g, dtype=dtype)
    want = out.double() + torch.einsum("poib,pib->pob", D, h1.double())
    lay.matvec_add(E, lay.inputs(h1, E), out)
    torch.testing.assert_close(out.double(), want, **tol)

    back = torch.randn(lay.P, lay.n_in, B, generator=g, dtype=dtype)
    want = back.double() + torch.einsum("poib,pob->pib", D, d1.double())
    lay.rmatvec_add(E, d1, back)
    torch.testing.assert_close(back.double(), want, **tol)

    torch.testing.assert_close(lay.mask_matvec(h1).double(), torch.einsum("poi,pib->pob", M, h1.double()), **tol)

    for clipped in (None, clip):
        for n in (1, chars):  # one character, and several at once (BPTT)
            E2 = E.clone()
            hn, dn = h[..., :n * B].contiguous(), d[..., :n * B].contiguous()
            grad = torch.einsum("potb,pitb->poib", dn.double().view(lay.P, lay.n_out, n, B),
                                hn.double().view(lay.P, lay.n_in, n, B))[masks]  # (N, B)
            want = gamma.double() * (E.double() + scale.double() * grad)
            if clipped is not None:
                want = torch.clamp(want, -clipped.double(), clipped.double())
            lay.step(E2, dn, lay.inputs(hn, E2), scale, gamma, clipped, chars=n)
            torch.testing.assert_close(E2.double(), want, **tol)
            if clipped is not None:
                assert bool((want.abs() == clip.double()).any()), "the clip never bound"


@needs_cc
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("B", [1, 7, 8, 9, 33, 41])
def test_native_kernels_match_dense_products_at_every_simd_tail(B, dtype):
    layout_products_match_dense(dtype, B)


class Operands:
    """A float32 native layout with B = 9 and one right value of every argument."""

    def __init__(self):
        self.lay, _, g = layout(torch.float32)
        self.B, self.N = 9, self.lay.N
        self.E, h, self.d, self.scale, self.gamma, self.clip = operands(self.lay, torch.float32, self.B, g)
        self.h = h
        self.x = self.lay.inputs(h, self.E)
        self.out = torch.zeros(self.lay.P, self.lay.n_out, self.B)
        self.back = torch.zeros(self.lay.P, self.lay.n_in, self.B)
        self.rows_in, self.rows_out = self.lay.P * self.lay.n_in, self.lay.P * self.lay.n_out


# (argument named in the error, the call with that one argument wrong, what the message says)
BAD_CALLS = {
    "matvec-E-dtype": ("E", lambda k: k.lay.matvec_add(k.E.double(), k.x, k.out), lambda k: "torch.float64"),
    "matvec-E-size": ("E", lambda k: k.lay.matvec_add(k.E[:-1], k.x, k.out),
                      lambda k: f"expected {k.N * k.B} elements, got {(k.N - 1) * k.B}"),
    "matvec-E-1d": ("E", lambda k: k.lay.matvec_add(k.E.flatten(), k.x, k.out), lambda k: "shape (N, B)"),
    "matvec-E-strided": ("E", lambda k: k.lay.matvec_add(k.E.t().contiguous().t(), k.x, k.out),
                         lambda k: "contiguous"),
    "matvec-x-size": ("x", lambda k: k.lay.matvec_add(k.E, k.x[:-1], k.out),
                      lambda k: f"expected {k.rows_in * k.B} elements, got {(k.rows_in - 1) * k.B}"),
    "matvec-x-dtype": ("x", lambda k: k.lay.matvec_add(k.E, k.x.half(), k.out), lambda k: "torch.float16"),
    "matvec-out-rows": ("out", lambda k: k.lay.matvec_add(k.E, k.x, k.out[:, :-1].contiguous()),
                        lambda k: f"expected {k.rows_out * k.B} elements"),
    "matvec-out-width": ("out", lambda k: k.lay.matvec_add(k.E, k.x, torch.zeros(k.lay.P, k.lay.n_out, k.B + 1)),
                         lambda k: f"expected {k.rows_out * k.B} elements"),
    "matvec-out-dtype": ("out", lambda k: k.lay.matvec_add(k.E, k.x, k.out.double()), lambda k: "torch.float64"),
    "matvec-out-strided": ("out", lambda k: k.lay.matvec_add(k.E, k.x, k.out.transpose(1, 2).contiguous()
                                                                       .transpose(1, 2)), lambda k: "contiguous"),
    "matvec-out-device": ("out", lambda k: k.lay.matvec_add(k.E, k.x, k.out.to("meta")), lambda k: "CPU"),
    "rmatvec-E-dtype": ("E", lambda k: k.lay.rmatvec_add(k.E.double(), k.d, k.back), lambda k: "torch.float64"),
    "rmatvec-d-size": ("d", lambda k: k.lay.rmatvec_add(k.E, k.d[:, :-1].contiguous(), k.back),
                       lambda k: f"expected {k.rows_out * k.B} elements"),
    "rmatvec-d-dtype": ("d", lambda k: k.lay.rmatvec_add(k.E, k.d.double(), k.back), lambda k: "torch.float64"),
    "rmatvec-out-size": ("out", lambda k: k.lay.rmatvec_add(k.E, k.d, k.back[:, :-1].contiguous()),
                         lambda k: f"expected {k.rows_in * k.B} elements"),
    "maskvec-h-dtype": ("h", lambda k: k.lay.mask_matvec(k.h.double()), lambda k: "torch.float64"),
    "step-E-dtype": ("E", lambda k: k.lay.step(k.E.double(), k.d, k.x, k.scale, k.gamma, k.clip),
                     lambda k: "torch.float64"),
    "step-d-size": ("d", lambda k: k.lay.step(k.E, k.d[:, :-1], k.x, k.scale, k.gamma, k.clip),
                    lambda k: f"expected {k.rows_out * k.B} elements"),
    "step-x-size": ("x", lambda k: k.lay.step(k.E, k.d, k.x[:-1], k.scale, k.gamma, k.clip),
                    lambda k: f"expected {k.rows_in * k.B} elements"),
    "step-x-chars": ("d", lambda k: k.lay.step(k.E, k.d, k.x, k.scale, k.gamma, k.clip, chars=2),
                     lambda k: f"expected {k.rows_out * 2 * k.B} elements"),
    "step-scale-size": ("scale", lambda k: k.lay.step(k.E, k.d, k.x, k.scale[:-1], k.gamma, k.clip),
                        lambda k: f"expected {k.N} elements"),
    "step-scale-dtype": ("scale", lambda k: k.lay.step(k.E, k.d, k.x, k.scale.double(), k.gamma, k.clip),
                         lambda k: "torch.float64"),
    "step-gamma-size": ("gamma", lambda k: k.lay.step(k.E, k.d, k.x, k.scale, k.gamma[:-1], k.clip),
                        lambda k: f"expected {k.N} elements"),
    "step-gamma-size-noclip": ("gamma", lambda k: k.lay.step(k.E, k.d, k.x, k.scale, k.gamma[:-1], None),
                               lambda k: f"expected {k.N} elements"),
    "step-clip-size": ("clip", lambda k: k.lay.step(k.E, k.d, k.x, k.scale, k.gamma, k.clip[:-1]),
                       lambda k: f"expected {k.N} elements"),
    "step-clip-dtype": ("clip", lambda k: k.lay.step(k.E, k.d, k.x, k.scale, k.gamma, k.clip.double()),
                        lambda k: "torch.float64"),
    "step-chars": ("chars", lambda k: k.lay.step(k.E, k.d, k.x, k.scale, k.gamma, k.clip, chars=0),
                   lambda k: ">= 1"),
}


@needs_cc
@pytest.mark.parametrize("case", BAD_CALLS)
def test_a_wrong_argument_to_a_kernel_is_refused_by_name(case):
    k = Operands()
    name, call, says = BAD_CALLS[case]
    before, out_before, back_before = k.E.clone(), k.out.clone(), k.back.clone()
    with pytest.raises(ValueError) as err:
        call(k)
    message, expected = str(err.value), says(k)
    assert message.startswith(f"native kernel argument {name}:") and expected in message, message
    # refused before any kernel ran: nothing written
    assert torch.equal(k.E, before) and torch.equal(k.out, out_before) and torch.equal(k.back, back_before)


@needs_cc
def test_the_index_arrays_are_checked_when_the_layout_is_built():
    lay, _, _ = layout()
    cols, row_ptr = lay.cols, lay.row_ptr
    lay.row_ptr = row_ptr.clone()
    lay.row_ptr[-1] += 1  # the last row would read past the end of E
    with pytest.raises(ValueError, match="argument row_ptr: expected non-decreasing offsets from 0 to"):
        lay._native_index()
    lay.row_ptr = row_ptr.int()
    with pytest.raises(ValueError, match="argument row_ptr: expected dtype torch.int64, got torch.int32"):
        lay._native_index()
    lay.row_ptr, lay.cols = row_ptr, cols.clone()
    lay.cols[-1] = lay.P * lay.n_in  # one row past the end of h
    with pytest.raises(ValueError, match=r"argument cols: expected values in \[0, "):
        lay._native_index()
