"""Ephemeral state stored as only its masked entries, entries-major with the sequences innermost.

What is stored. An ephemeral entry outside the mask is always 0, so a sequence's ephemeral matrix is
fully described by its values at the masked positions. For one hidden layer, the masked entries of
all members are listed once, member after member and row-major within a member (so the entries of
one row of one member are contiguous), with no padding: `N = sum_p nnz_p` entries. The values are
one tensor `E (N, B)`: entry j of every sequence b of its member. The state per member-sequence is
exactly its masked entries.

Activations are kept feature-major, `h (P, n, B)`, seen flat as `(P * n, B)`: row `p * n + i` is
feature i of member p for all B sequences. Every sparse operation below therefore moves whole rows
of B contiguous numbers. The operations the engine needs, for every member and sequence:

    matvec_add(E, x, out)     out += (E * M) h                          (forward)
    rmatvec_add(E, d, out)    out += (E * M)^T d                        (backprop, BPTT)
    step(E, d, x, s, ...)     E <- clip(gamma * (E + s * sum_t d_t h_t^T * M))  (the ephemeral
                              update: one character, or BPTT's T characters at once; s = -lr * plasticity)
    mask_matvec(h)            M h with the 0/1 mask (the ephemeral part of a gradient norm)

where `x = inputs(h)` is the layer input in whatever form the backend wants. Each is the dense masked
formula restricted to the entries where M is 1 (elsewhere E, and so every term, is 0); sums are
taken in another order than a dense product, which changes rounding only.

Two backends compute them:

- native (CPU, float32/float64): a few small C loops, compiled once per machine with the system C
  compiler and loaded with ctypes (`_native`). Each walks the entries row by row and reads or
  updates E in a single pass, with h and d (a few hundred KB) staying in cache; the B numbers of an
  entry are one or two SIMD vectors. This is ~5x faster than the torch ops below, which need 3-4
  passes over (N, B) arrays per operation. Set SWEEPER_NATIVE=0 to turn it off; CC names the
  compiler (arguments allowed, e.g. "ccache gcc").
  The library is cached in a private directory, $SWEEPER_CACHE_DIR or else
  $XDG_CACHE_HOME/sweeper/kernels (~/.cache/sweeper/kernels). A library is loaded only from a
  directory that is no symbolic link, is owned by the current user and open to no one else (mode
  0700), and only when the file itself is the user's and writable by no one else: otherwise a
  warning says why and the torch ops are used. Every call into C first checks each tensor's device,
  layout, dtype and number of elements against what the kernel will read or write (`_ptr`).
- torch (any device; the fallback when no C compiler is found): `x` is h gathered at the entries'
  columns (index_select, one row copy per entry); d at the entries' rows is a copy too (the entries
  are row-sorted); the row and column sums are a 0/1 CSR matrix times (N, B) (each product 1.0 * v
  is exact). scatter_add_ into the last axis measured ~20x slower for the sums.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

# ----------------------------------------------------------------------------------------------------
# native kernels

_C_SOURCE = r"""
#include <stdint.h>
/* A 32-byte block of B (one AVX2 register; two SSE or half an AVX-512 register). Four of them are
   summed side by side (four independent accumulators). A 64-byte vector type was ~10x slower on an
   AVX2-only CPU, where GCC lowers it through memory. may_alias + small alignment: loads and stores at
   any element offset are allowed. */
typedef float Vf32 __attribute__((vector_size(32), aligned(4), may_alias));
typedef double Vf64 __attribute__((vector_size(32), aligned(8), may_alias));

/* Entries j of row i are row_ptr[i] .. row_ptr[i+1]-1; row i of d/out and row cols[j] of h/out
   hold B contiguous numbers; E, total: (N, B). */
#define KERNELS(T, S)                                                                              \
/* out[i] += sum_j E[j] * h[cols[j]]: the row sum kept in registers, per block of B. */            \
void matvec_##S(const T *restrict E, const T *restrict h, const int64_t *restrict cols,          \
                const int64_t *restrict row_ptr, int64_t n_rows, int64_t B, T *restrict out) {    \
    const int64_t L = sizeof(V##S) / sizeof(T);                                                   \
    for (int64_t i = 0; i < n_rows; i++) {                                                        \
        T *restrict o = out + i * B;                                                              \
        const int64_t j0 = row_ptr[i], j1 = row_ptr[i + 1];                                       \
        int64_t b0 = 0;                                                                           \
        for (; b0 + 4 * L <= B; b0 += 4 * L) {                                                    \
            V##S a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                          \
            for (int64_t j = j0; j < j1; j++) {                                                   \
                const T *e = E + j * B + b0, *x = h + cols[j] * B + b0;                           \
                a0 += *(const V##S *)(e) * *(const V##S *)(x);                                    \
                a1 += *(const V##S *)(e + L) * *(const V##S *)(x + L);                            \
                a2 += *(const V##S *)(e + 2 * L) * *(const V##S *)(x + 2 * L);                    \
                a3 += *(const V##S *)(e + 3 * L) * *(const V##S *)(x + 3 * L);                    \
            }                                                                                     \
            *(V##S *)(o + b0) += a0;                                                              \
            *(V##S *)(o + b0 + L) += a1;                                                          \
            *(V##S *)(o + b0 + 2 * L) += a2;                                                      \
            *(V##S *)(o + b0 + 3 * L) += a3;                                                      \
        }                                                                                         \
        for (; b0 + L <= B; b0 += L) {                                                            \
            V##S acc = {0};                                                                       \
            for (int64_t j = j0; j < j1; j++)                                                     \
                acc += *(const V##S *)(E + j * B + b0) * *(const V##S *)(h + cols[j] * B + b0);   \
            *(V##S *)(o + b0) += acc;                                                             \
        }                                                                                         \
        for (int64_t j = j0; j < j1; j++)                                                         \
            for (int64_t b = b0; b < B; b++) o[b] += E[j * B + b] * h[cols[j] * B + b];           \
    }                                                                                             \
}                                                                                                 \
/* out[cols[j]] += E[j] * d[i]. The columns of one row are distinct: no dependency in a row. */   \
void rmatvec_##S(const T *restrict E, const T *restrict d, const int64_t *restrict cols,         \
                 const int64_t *restrict row_ptr, int64_t n_rows, int64_t B, T *restrict out) {   \
    for (int64_t i = 0; i < n_rows; i++) {                                                        \
        const T *restrict di = d + i * B;                                                         \
        for (int64_t j = row_ptr[i]; j < row_ptr[i + 1]; j++) {                                   \
            const T *restrict e = E + j * B;                                                      \
            T *restrict o = out + cols[j] * B;                                                    \
            for (int64_t b = 0; b < B; b++) o[b] += e[b] * di[b];                                 \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
/* E[j] <- clip(gamma[j] * (E[j] + s[j] * sum_t d_t[i] * h_t[cols[j]])) for nT characters t: rows of \
   d and h hold nT blocks of B (row width W = nT * B). clamp keeps NaN, like torch.clamp. acc: B scratch. */ \
void step_##S(T *restrict E, const T *restrict d, const T *restrict h, const int64_t *restrict cols, \
              const int64_t *restrict row_ptr, int64_t n_rows, int64_t B, int64_t nT,             \
              const T *restrict scale, const T *restrict gamma, const T *restrict clip, int clipping, \
              T *restrict acc) {                                                                  \
    const int64_t W = nT * B;                                                                     \
    for (int64_t i = 0; i < n_rows; i++) {                                                        \
        const T *restrict di = d + i * W;                                                         \
        for (int64_t j = row_ptr[i]; j < row_ptr[i + 1]; j++) {                                   \
            T *restrict e = E + j * B;                                                            \
            const T *restrict x = h + cols[j] * W;                                                \
            const T s = scale[j], g = gamma[j], c = clip[j];                                      \
            for (int64_t b = 0; b < B; b++) acc[b] = di[b] * x[b];                                \
            for (int64_t t = 1; t < nT; t++)                                                      \
                for (int64_t b = 0; b < B; b++) acc[b] += di[t * B + b] * x[t * B + b];           \
            if (clipping)                                                                         \
                for (int64_t b = 0; b < B; b++) {                                                 \
                    T v = g * (e[b] + s * acc[b]);                                                \
                    e[b] = v < -c ? -c : (v > c ? c : v);                                         \
                }                                                                                 \
            else                                                                                  \
                for (int64_t b = 0; b < B; b++) e[b] = g * (e[b] + s * acc[b]);                   \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
/* out[i] += sum_j h[cols[j]]: the row sums of the 0/1 mask times h. */                           \
void maskvec_##S(const T *restrict h, const int64_t *restrict cols, const int64_t *restrict row_ptr, \
                 int64_t n_rows, int64_t B, T *restrict out) {                                    \
    for (int64_t i = 0; i < n_rows; i++) {                                                        \
        T *restrict o = out + i * B;                                                              \
        for (int64_t j = row_ptr[i]; j < row_ptr[i + 1]; j++) {                                   \
            const T *restrict x = h + cols[j] * B;                                                \
            for (int64_t b = 0; b < B; b++) o[b] += x[b];                                         \
        }                                                                                         \
    }                                                                                             \
}
KERNELS(float, f32)
KERNELS(double, f64)
"""

_P, _I64, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_SIGNATURES = {
    "matvec": [_P, _P, _P, _P, _I64, _I64, _P],
    "rmatvec": [_P, _P, _P, _P, _I64, _I64, _P],
    "step": [_P, _P, _P, _P, _P, _I64, _I64, _I64, _P, _P, _P, _INT, _P],
    "maskvec": [_P, _P, _P, _I64, _I64, _P],
}
_NOT_LOADED = object()
_lib = _NOT_LOADED


def _cpu_signature() -> str:
    """Identifies the instruction set the library is compiled for (-march=native)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _compiler() -> list[str] | None:
    """The C compiler's argv: $CC split like a shell would ("ccache gcc", "gcc -m64"), else cc or gcc
    from PATH; None when there is none. Raises ValueError for a $CC that does not parse."""
    cc = shlex.split(os.environ.get("CC", ""))
    if cc:
        return cc
    found = shutil.which("cc") or shutil.which("gcc")
    return [found] if found else None


def _cache_dir() -> Path:
    """Where compiled kernels are kept: $SWEEPER_CACHE_DIR, else the user's cache directory."""
    if os.environ.get("SWEEPER_CACHE_DIR"):
        return Path(os.environ["SWEEPER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # a relative value is ignored (XDG)
    return base / "sweeper" / "kernels"


def _make_private_dir(path: Path) -> None:
    """Creates `path` with mode 0700 unless it exists (an existing directory is left as it is, for
    `_unsafe` to judge). mkdir's mode is reduced by the umask: chmod sets it exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)


def _unsafe(path: Path, directory: bool) -> str | None:
    """Why a library must not be loaded from `path` (the cache directory, or the library file), or None.

    Whoever can write the directory or the file can choose the code that runs in this process, so
    both must belong to the current user, and be writable by no one else; the directory must be
    open to no one else at all (0700). A symbolic link is refused: it could point anywhere. Nor is
    the directory used inside a parent that anyone may write without the sticky bit (like /tmp's):
    there another user could rename it away and put one of theirs in its place."""
    try:
        st = os.lstat(path)
        parent = os.stat(path.parent) if directory else None
    except OSError as err:
        return f"cannot stat it ({err.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if directory and not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if not directory and not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid != os.getuid():
        return f"it is owned by uid {st.st_uid}, not by the current user (uid {os.getuid()})"
    mode = stat.S_IMODE(st.st_mode)
    if directory and mode & 0o077:
        return f"its mode is {mode:04o}; it must be 0700 (no access for group or others)"
    if not directory and mode & 0o022:
        return f"its mode is {mode:04o}; group or others may write it"
    if parent is not None and parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
        return f"its parent directory is writable by anyone (mode {stat.S_IMODE(parent.st_mode):04o}, no sticky bit)"
    return None


def _compile(cache: Path, cc: list[str]) -> Path:
    """The library built from _C_SOURCE with compiler argv `cc`, in `cache` (built there unless present).
    The name hashes the source, the full compiler argv, the flags and the CPU's instruction set."""
    for flags in (["-O3", "-march=native"], ["-O3"]):
        key = hashlib.sha256(json.dumps([_C_SOURCE, cc, flags, _cpu_signature()]).encode()).hexdigest()[:16]
        lib = cache / f"ell_{key}.so"
        if os.path.lexists(lib):
            return lib
        with tempfile.TemporaryDirectory(dir=cache) as tmp:  # build aside, then rename atomically
            src, out = Path(tmp) / "ell.c", Path(tmp) / "ell.so"
            src.write_text(_C_SOURCE)
            done = subprocess.run([*cc, *flags, "-shared", "-fPIC", "-o", str(out), str(src)],
                                  capture_output=True, timeout=120)
            if done.returncode == 0:
                os.chmod(out, 0o700)  # the compiler's output mode follows the umask
                os.replace(out, lib)
                return lib
    raise OSError(done.stderr.decode(errors="replace")[-2000:])


def _native():
    """The compiled kernels (ctypes library), or None where there is no C compiler (or SWEEPER_NATIVE=0),
    the build fails, or the cache fails the checks of `_unsafe` (with a warning in those two cases)."""
    global _lib
    if _lib is not _NOT_LOADED:
        return _lib
    _lib = None
    if os.environ.get("SWEEPER_NATIVE", "1") == "0" or os.name != "posix":
        return None
    fallback = "using torch ops (slower)"
    try:
        cc = _compiler()
    except ValueError as err:
        warnings.warn(f"sweeper: cannot parse CC={os.environ.get('CC')!r} ({err}); {fallback}", stacklevel=2)
        return None
    if cc is None:
        return None
    try:
        cache = _cache_dir()
    except RuntimeError as err:  # no home directory
        warnings.warn(f"sweeper: no cache directory for the native ephemeral kernels ({err}); {fallback}",
                      stacklevel=2)
        return None
    try:
        _make_private_dir(cache)
        where, problem = cache, _unsafe(cache, directory=True)  # checked before anything is built in it
        if problem is None:
            where = _compile(cache, cc)
            problem = _unsafe(where, directory=False)
        if problem is not None:
            warnings.warn(f"sweeper: not loading the native ephemeral kernels from {where}: {problem}; {fallback}",
                          stacklevel=2)
            return None
        lib = ctypes.CDLL(str(where))
    except (OSError, subprocess.SubprocessError) as err:
        warnings.warn(f"sweeper: could not build or load the native ephemeral kernels in {cache} ({err}); "
                      f"{fallback}", stacklevel=2)
        return None
    for name, args in _SIGNATURES.items():
        for suffix in ("f32", "f64"):
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes, fn.restype = args, None
    _lib = lib
    return _lib


def _ptr(t: torch.Tensor, name: str, dtype: torch.dtype, numel: int) -> int:
    """The address of a tensor's data, once it is what a kernel reads or writes there: a contiguous CPU
    tensor of `dtype` with exactly `numel` elements (else ValueError naming the argument). The caller
    keeps `t` alive for the call: never pass a temporary."""
    if t.dtype is not dtype or t.numel() != numel or not t.is_contiguous() or not t.is_cpu:
        _refuse(t, name, dtype, numel)
    return t.data_ptr()


def _refuse(t: torch.Tensor, name: str, dtype: torch.dtype, numel: int):
    if not t.is_cpu:
        raise ValueError(f"native kernel argument {name}: expected a CPU tensor, got one on {t.device}")
    if t.dtype is not dtype:
        raise ValueError(f"native kernel argument {name}: expected dtype {dtype}, got {t.dtype}")
    if t.numel() != numel:
        raise ValueError(f"native kernel argument {name}: expected {numel} elements, got {t.numel()} "
                         f"(shape {tuple(t.shape)})")
    raise ValueError(f"native kernel argument {name}: expected a contiguous tensor, got strides {t.stride()} "
                     f"for shape {tuple(t.shape)}")


# ----------------------------------------------------------------------------------------------------
# torch backend helpers


def _csr(crow: torch.Tensor, col: torch.Tensor, n_rows: int, n_cols: int, dtype) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR @ dense is all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, torch.ones(len(col), dtype=dtype, device=col.device),
                                       size=(n_rows, n_cols), check_invariants=True)


def _offsets(counts: torch.Tensor) -> torch.Tensor:
    crow = counts.new_zeros(len(counts) + 1)
    torch.cumsum(counts, 0, out=crow[1:])
    return crow


class Layout:
    """The masked entries of one hidden layer of every member, and the sparse operations on them."""

    def __init__(self, masks: torch.Tensor, dtype, native: bool = True):
        """masks: (P, n_out, n_in) bool, one mask per member (on the engine's device)."""
        P, n_out, n_in = masks.shape
        self.P, self.n_out, self.n_in = P, n_out, n_in
        member, row, col = masks.nonzero(as_tuple=True)  # member-major, row-major within a member
        self.N = len(member)
        self.counts = masks.flatten(1).sum(1)  # (P,) entries per member
        self.cols = member * n_in + col  # (N,) row of the flat input (P * n_in, B) feeding entry j
        self.rows = member * n_out + row  # (N,) row of the flat output (P * n_out, B); non-decreasing
        self.row_counts = torch.bincount(self.rows, minlength=P * n_out)  # (P * n_out,)
        self.row_ptr = _offsets(self.row_counts)  # entries of flat row i: row_ptr[i] .. row_ptr[i+1]-1
        entries = torch.arange(self.N, device=masks.device)
        self.member_sum = _csr(_offsets(self.counts), entries, P, self.N, dtype)
        lib = _native() if native and masks.device.type == "cpu" and dtype in (torch.float32, torch.float64) else None
        self.backend = "native" if lib is not None else "torch"
        if lib is not None:
            suffix = "f32" if dtype == torch.float32 else "f64"
            self._k = {name: getattr(lib, f"{name}_{suffix}") for name in _SIGNATURES}
            self._dtype, self._n_rows, self._n_cols = dtype, P * n_out, P * n_in
            self._cols_p, self._row_ptr_p = self._native_index()
        else:
            self.R = _csr(self.row_ptr, entries, P * n_out, self.N, dtype)
            by_col = torch.argsort(self.cols, stable=True)
            self.C = _csr(_offsets(torch.bincount(self.cols, minlength=P * n_in)), by_col, P * n_in, self.N, dtype)
        self._work: dict[tuple, torch.Tensor] = {}

    def _native_index(self) -> tuple[int, int]:
        """The addresses of cols and row_ptr for the kernels, checked once: the kernels index E with
        row_ptr's values and h (or out) with cols', so these must lie within the sizes that the checks
        of every call admit (`_ptr`): row_ptr non-decreasing from 0 to N, cols in [0, P * n_in)."""
        n_rows, n_cols, rp, cols = self._n_rows, self._n_cols, self.row_ptr, self.cols
        addresses = _ptr(cols, "cols", torch.int64, self.N), _ptr(rp, "row_ptr", torch.int64, n_rows + 1)
        if int(rp[0]) != 0 or int(rp[-1]) != self.N or bool((rp[1:] < rp[:-1]).any()):
            raise ValueError(f"native kernel argument row_ptr: expected non-decreasing offsets from 0 to {self.N}")
        if self.N and (int(cols.min()) < 0 or int(cols.max()) >= n_cols):
            raise ValueError(f"native kernel argument cols: expected values in [0, {n_cols}), "
                             f"got [{int(cols.min())}, {int(cols.max())}]")
        self._index = (cols, rp)  # kept alive with the addresses, whatever becomes of the attributes
        return addresses

    @staticmethod
    def _width(E: torch.Tensor) -> int:
        """B, the sequences of E (N, B)."""
        if E.dim() != 2:
            raise ValueError(f"native kernel argument E: expected shape (N, B), got {tuple(E.shape)}")
        return E.shape[1]

    def _buffer(self, name, like: torch.Tensor, width: int | None = None) -> torch.Tensor:
        """A reused (N, width) work array: a fresh multi-MB tensor per character costs page faults."""
        shape = (self.N, like.shape[1] if width is None else width)
        buf = self._work.get(name)
        if buf is None or buf.shape != shape or buf.dtype != like.dtype:
            buf = self._work[name] = like.new_empty(shape)
        return buf

    # -------------------------------------------------------------------------------- per member

    def per_entry(self, values: torch.Tensor) -> torch.Tensor:
        """A per-member value (P,) for every entry: (N, 1), to scale E (N, B) member by member."""
        return values.repeat_interleave(self.counts, output_size=self.N).unsqueeze(1).contiguous()

    def per_member(self, X: torch.Tensor) -> torch.Tensor:
        """Sum over each member's entries: (N, B) -> (P, B)."""
        return self.member_sum @ X

    # -------------------------------------------------------------------------------- products

    def inputs(self, h: torch.Tensor, E: torch.Tensor, slot="x") -> torch.Tensor:
        """The layer input (P, n_in, W) in the form the other operations take: flat (P * n_in, W)
        for the native kernels, gathered at the entries' columns (N, W) for torch (into buffer `slot`)."""
        flat = h.reshape(self.P * self.n_in, -1)
        if self.backend == "native":
            return flat.contiguous()
        return torch.index_select(flat, 0, self.cols, out=self._buffer(("inputs", slot), E, flat.shape[1]))

    def _expand_rows(self, d: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
        """d at each entry's row: (P, n_out, W) -> (N, W). The entries are row-sorted: a copy."""
        flat = d.reshape(self.P * self.n_out, -1)
        return torch.index_select(flat, 0, self.rows, out=self._buffer("rows", E, flat.shape[1]))

    def matvec_add(self, E: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> None:
        """out (P, n_out, B) += (E * M) h."""
        if self.backend == "native":
            T, B = self._dtype, self._width(E)
            self._k["matvec"](_ptr(E, "E", T, self.N * B), _ptr(x, "x", T, self._n_cols * B), self._cols_p,
                              self._row_ptr_p, self._n_rows, B, _ptr(out, "out", T, self._n_rows * B))
        else:
            out += (self.R @ torch.mul(E, x, out=self._buffer("product", E))).view_as(out)

    def rmatvec_add(self, E: torch.Tensor, d: torch.Tensor, out: torch.Tensor) -> None:
        """out (P, n_in, B) += (E * M)^T d, d: (P, n_out, B)."""
        if self.backend == "native":
            T, B = self._dtype, self._width(E)
            self._k["rmatvec"](_ptr(E, "E", T, self.N * B), _ptr(d, "d", T, self._n_rows * B), self._cols_p,
                               self._row_ptr_p, self._n_rows, B, _ptr(out, "out", T, self._n_cols * B))
        else:
            out += (self.C @ torch.mul(E, self._expand_rows(d, E), out=self._buffer("product", E))).view_as(out)

    def mask_matvec(self, h: torch.Tensor) -> torch.Tensor:
        """M h for the 0/1 mask: (P, n_in, B) -> (P, n_out, B), each row's sum of h over its entries."""
        flat = h.reshape(self.P * self.n_in, -1).contiguous()
        if self.backend == "native":
            T, B = self._dtype, flat.shape[1]
            out = flat.new_zeros(self._n_rows, B)
            self._k["maskvec"](_ptr(flat, "h", T, self._n_cols * B), self._cols_p, self._row_ptr_p, self._n_rows,
                               B, _ptr(out, "out", T, self._n_rows * B))
        else:
            out = self.R @ torch.index_select(flat, 0, self.cols)
        return out.view(self.P, self.n_out, -1)

    def step(self, E: torch.Tensor, d: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, gamma: torch.Tensor,
             clip: torch.Tensor | None, chars: int = 1) -> None:
        """E <- clip(gamma * (E + scale * sum_t d_t h_t^T * M)) in place, over `chars` characters t.

        d (P, n_out, chars * B): the error signals delta, character t in columns t*B .. t*B+B-1;
        x = inputs(h) of the matching (P, n_in, chars * B) inputs. scale (-lr * plasticity), gamma,
        clip: (N, 1) per entry (`per_entry`); clip None when no member clips."""
        if self.backend == "native":
            T, N, B = self._dtype, self.N, self._width(E)
            if not isinstance(chars, int) or chars < 1:
                raise ValueError(f"native kernel argument chars: expected an int >= 1, got {chars!r}")
            W = chars * B
            d, acc = d.contiguous(), E.new_empty(B)  # named: the kernel reads them after _ptr returns
            self._k["step"](_ptr(E, "E", T, N * B), _ptr(d, "d", T, self._n_rows * W),
                            _ptr(x, "x", T, self._n_cols * W), self._cols_p, self._row_ptr_p, self._n_rows, B,
                            chars, _ptr(scale, "scale", T, N), _ptr(gamma, "gamma", T, N),
                            _ptr(gamma if clip is None else clip, "gamma" if clip is None else "clip", T, N),
                            clip is not None, acc.data_ptr())  # acc: B fresh numbers of E's dtype
            return
        B = E.shape[1]
        grad = torch.mul(self._expand_rows(d, E), x, out=self._buffer("product", E, x.shape[1]))
        E.addcmul_(grad.view(self.N, chars, B).sum(1) if chars > 1 else grad, scale)
        E.mul_(gamma)
        if clip is not None:
            torch.clamp(E, -clip, clip, out=E)
