"""BO-guided evolution: mutations of the best architectures, picked by a Gaussian-process model.

nasforge's own strategy (not from a single paper); it combines the mutation neighbourhood of
regularized / local search (Real et al. 2019; White et al., "Local Search is State of the Art for
NAS Benchmarks", 2020) with a surrogate model that picks among mutations, as BANANAS (White et
al., AAAI 2021) does with a neural ensemble; here a Gaussian process with Thompson sampling.

Each step:
    1. Fit a GP on every evaluated architecture. Inputs are the encoded decisions; the kernel is
       ``(1 - m) exp(-h(x, x') / l) + m (1 - h(x, x') / T)``, where ``h`` counts differing
       decisions out of ``T``: a Hamming product kernel (interactions) mixed with an additive
       one. Targets are warped by a copula (ranks -> normal quantiles: accuracies have a long
       tail of broken cells that would otherwise dominate the fit). ``l``, ``m`` and the noise
       variance are chosen from a small grid by marginal likelihood every ``refit_every`` steps.
       Observation noise matters: NAS-Bench-201 draws one training seed per query.
    2. Candidates: every single mutation of the ``parents`` (default 1) architectures with the
       best *posterior mean* (not the noisy observation), ``mutations`` random double mutations
       of them, and ``random_candidates`` uniform samples; architectures already asked are
       dropped.
    3. Ask the candidate that maximises one joint posterior draw (Thompson sampling; ``ei`` and
       ``ucb`` are options). Thompson sampling escaped the local optima where EI stalled.
The first ``n_init`` queries are uniform random samples (without repeats).

Decisions: works on any space via its sequential decision view (variable-length architectures
are padded with -1, so a missing decision counts as a difference); failed evaluations are left
out of the GP fit; ``batch_size`` B > 1 takes the top-B candidates of one acquisition (no
fantasies); the dense algebra runs with one BLAS thread (``threadpoolctl``). Beyond
``max_points`` observations the GP is fitted on the best half and the most recent half of them,
and a Thompson draw covers at most ``thompson_pool`` candidates (the best by mean + 3 sd), so an
ask costs about the same at 300 and at 5,000 trials; the likelihood grid uses one
kernel matrix per (length, mix) for all noise levels. The pick under noise is the evaluated
architecture with the best posterior mean (:meth:`BOEvolution.estimate`), not the best noisy
observation; repeated evaluations enter the GP as separate noisy observations (their mean).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from statistics import NormalDist
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field

from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.operations import mutate, neighbours
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, AskTellParams, AskTellStrategy
from nasforge.strategies.blackbox.evolution import sample_unseen

LENGTH_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
NOISES = (0.001, 0.01, 0.05, 0.2, 0.5)
MIXES = (0.0, 0.5, 0.9)


class BOEvolutionParams(AskTellParams):
    n_init: int = Field(
        default=5, ge=1,
        description="random architectures first (5 beat 10 at 20-50 queries on NB201 and "
        "HPOLib tables and was level beyond; docs/benchmarks.md)")
    parents: int = Field(
        default=1, ge=1,
        description="best-by-posterior-mean parents (1 beat 3 at 20 queries on NB201 and HPOLib "
        "tables and was level beyond; docs/benchmarks.md)")
    mutations: int = Field(default=200, ge=0, description="random double mutations of parents")
    random_candidates: int = Field(default=200, ge=0, description="uniform random candidates")
    refit_every: int = Field(default=10, ge=1, description="steps between hyper-parameter fits")
    xi: float = Field(default=0.0, ge=0, description="EI exploration margin (standardised units)")
    acquisition: Literal["ei", "ucb", "thompson"] = Field(
        default="thompson",
        description="Thompson sampling (a joint posterior draw over the candidates), expected "
        "improvement, or UCB (mean + beta sd)",
    )
    beta: float = Field(default=2.0, ge=0, description="UCB width")
    transform: Literal["copula", "log_error", "none"] = Field(
        default="copula",
        description="target warping before the GP: copula (ranks -> normal quantiles), "
        "log_error (-log(1 - acc)), none",
    )
    kernel: Literal["product", "additive", "mixed"] = Field(
        default="mixed",
        description="Hamming product kernel, additive kernel, or a mixture chosen by likelihood",
    )
    max_points: int = Field(
        default=256, ge=8,
        description="GP training points at most: beyond, the best half by observation and the "
        "most recent half (keeps an ask's cost flat in the trial count)",
    )
    thompson_pool: int = Field(
        default=256, ge=2,
        description="Thompson sampling: a joint draw over at most this many candidates (the "
        "best by mean + 3 sd); bounds the cost of the draw",
    )
    pool_all_below: int = Field(
        default=0, ge=0,
        description="score every architecture of a finite space of at most this size (0: never)",
    )


def _one_hot(x: np.ndarray, hi: int) -> np.ndarray:
    n, t = x.shape
    out = np.zeros((n, t * hi), dtype=np.float32)
    out[np.arange(n)[:, None], np.arange(t) * hi + x.astype(np.int64) + 1] = 1.0
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of differing decisions between every row of ``a`` and every row of ``b``
    (decision values >= -1; -1 is padding). Computed as ``T - onehot(a) onehot(b)^T``."""
    t = a.shape[1]
    hi = int(max(a.max(initial=-1), b.max(initial=-1))) + 2
    if t == 0 or hi * t > 4096:
        h: np.ndarray = (a[:, None, :] != b[None, :, :]).sum(-1, dtype=np.int16)
        return h
    matches = _one_hot(a, hi) @ _one_hot(b, hi).T
    out: np.ndarray = (t - np.rint(matches)).astype(np.int16)
    return out


def _by_value(h: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn(h)`` for an integer array of Hamming distances (0..T, T small): ``fn`` once per
    distinct value, then a gather. Bitwise equal to ``fn(h)`` for an elementwise ``fn`` (the
    same float operations on the same values), and much cheaper than an ``exp`` per entry."""
    if h.dtype.kind not in "iu" or h.size == 0 or h.min() < 0:  # (not distances: no table)
        return fn(h)
    values = np.arange(int(h.max()) + 1, dtype=h.dtype)
    out: np.ndarray = np.take(fn(values), h)
    return out


def kernel_of(h: np.ndarray, width: int, length: float, mix: float = 0.0) -> np.ndarray:
    """``(1 - mix) exp(-h / length) + mix (1 - h / T)`` from Hamming distances ``h``."""

    def k(d: np.ndarray) -> np.ndarray:
        out: np.ndarray = (1.0 - mix) * np.exp(-d / length)
        if mix:
            out = out + mix * (1.0 - d / width)
        return out

    return _by_value(h, k)


def hamming_kernel(a: np.ndarray, b: np.ndarray, length: float, mix: float = 0.0) -> np.ndarray:
    """``(1 - mix) exp(-h / length) + mix (1 - h / T)``: product (interactions) + additive."""
    return kernel_of(hamming(a, b), a.shape[1], length, mix)


_NORMAL = NormalDist()


_POOLS: list[Any] = []  # one threadpoolctl controller per process (finding BLAS costs ms)


def _one_blas_thread() -> AbstractContextManager[Any]:
    """Small dense algebra: a multi-threaded BLAS only loses time (badly so on a busy machine)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return nullcontext()
    if not _POOLS:
        _POOLS.append(ThreadpoolController())
    limiter: AbstractContextManager[Any] = _POOLS[0].limit(limits=1, user_api="blas")
    return limiter


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    return np.asarray([_NORMAL.cdf(float(v)) for v in np.ravel(z)]).reshape(np.shape(z))


def copula(y: np.ndarray) -> np.ndarray:
    """Ranks (ties averaged) -> standard normal quantiles: a monotone, outlier-proof warping."""
    from scipy.special import ndtri

    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranks = (start + (counts - 1) / 2.0)[inverse.ravel()]  # ties share their average rank
    q = (ranks + 0.5) / len(y)
    out: np.ndarray = ndtri(q)
    return out


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float, xi: float) -> np.ndarray:
    sd = np.maximum(sd, 1e-9)
    z = (mu - best - xi) / sd
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    out: np.ndarray = (mu - best - xi) * _norm_cdf(z) + sd * pdf
    return out


def _tri_solve(chol: np.ndarray, b: np.ndarray, trans: bool = False) -> np.ndarray:
    """``L^-1 b`` (or ``L^-T b``) for a lower-triangular ``L``: LAPACK's trtrs directly (scipy's
    wrapper costs more than the solve at these sizes)."""
    from scipy.linalg.lapack import dtrtrs

    out, info = dtrtrs(chol, np.asfortranarray(b, dtype=np.float64), lower=1,
                       trans=1 if trans else 0)
    if info != 0:
        raise np.linalg.LinAlgError(f"triangular solve failed (info {info})")
    result: np.ndarray = out
    return result


def _solve_many(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L^-1 B`` for many right-hand sides through numpy's LAPACK: measured 0.7-1.3 ms for
    200 x 300 where scipy's ``trtrs`` took 4-8 ms once BLAS threads are limited at run time
    (``threadpoolctl``, as :func:`_one_blas_thread` does), against 0.6 ms with
    ``OPENBLAS_NUM_THREADS=1`` set before start."""
    out: np.ndarray = np.linalg.solve(chol, b)
    return out


class GP:
    """Exact GP regression with the Hamming kernel (unit signal variance on standardised y)."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, length: float, noise: float, mix: float = 0.0,
        h: np.ndarray | None = None, k: np.ndarray | None = None,
    ) -> None:
        self.x, self.length, self.mix = x, length, mix
        self.mean, self.scale = float(y.mean()), float(y.std() or 1.0)
        yz = (y - self.mean) / self.scale
        if k is None:
            k = kernel_of(hamming(x, x) if h is None else h, x.shape[1], length, mix)
        k = k + noise * np.eye(len(x))
        self.chol = np.linalg.cholesky(k)
        w = _tri_solve(self.chol, yz)
        self.alpha = _tri_solve(self.chol, w, trans=True)
        log_det = np.log(np.diag(self.chol)).sum()
        self.lml = float(-0.5 * w @ w - log_det - 0.5 * len(x) * math.log(2 * math.pi))

    def posterior_mean(self, xs: np.ndarray) -> np.ndarray:
        """Posterior mean only (no solve), standardised units."""
        out: np.ndarray = hamming_kernel(xs, self.x, self.length, self.mix) @ self.alpha
        return out

    def predict_v(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior mean, standard deviation and ``v = L^-1 k(X, xs)`` (for :meth:`sample`)."""
        ks = hamming_kernel(xs, self.x, self.length, self.mix)
        mu = ks @ self.alpha
        v = _solve_many(self.chol, ks.T)
        var = np.maximum(1.0 - (v * v).sum(0), 1e-12)
        return mu, np.sqrt(var), v

    def predict(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function, standardised units."""
        mu, sd, _ = self.predict_v(xs)
        return mu, sd

    def sample(
        self, xs: np.ndarray, mu: np.ndarray, rng: np.random.Generator,
        v: np.ndarray | None = None,
    ) -> np.ndarray:
        """One joint posterior draw of the latent function at ``xs`` (``v`` from predict_v)."""
        if v is None:
            _, _, v = self.predict_v(xs)
        cov = hamming_kernel(xs, xs, self.length, self.mix) - v.T @ v
        z = rng.standard_normal(len(xs))
        try:
            chol = np.linalg.cholesky(cov + 1e-6 * np.eye(len(xs)))
            out: np.ndarray = mu + chol @ z
        except np.linalg.LinAlgError:  # numerically indefinite: fall back to eigenvectors
            w, q = np.linalg.eigh(cov)
            out = mu + q @ (np.sqrt(np.clip(w, 0, None)) * z)
        return out


@STRATEGIES.register("bo_evolution")
class BOEvolution(AskTellStrategy):
    """Mutations of the best architectures, picked by GP expected improvement."""

    name: ClassVar[str] = "bo_evolution"
    Params: ClassVar[type[BaseModel]] = BOEvolutionParams
    history: ClassVar[tuple[str, ...]] = ("archs", "ys", "rows", "seen", "seen_rows")

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed, **params)
        p = self.p
        self.n_init: int = p.n_init
        self.parents: int = p.parents
        self.mutations: int = p.mutations
        self.random_candidates: int = p.random_candidates
        self.refit_every: int = p.refit_every
        self.xi: float = p.xi
        self.transform: str = p.transform
        self.acquisition: str = p.acquisition
        self.beta: float = p.beta
        self.pool_all_below: int = p.pool_all_below
        self.max_points: int = p.max_points
        self.thompson_pool: int = p.thompson_pool
        self.rows: list[np.ndarray] = []  # encoded decisions of self.archs (GP inputs)
        self.archs: list[Architecture] = []
        self.ys: list[float] = []
        self.seen: set[str] = set()
        self.seen_rows: set[bytes] = set()  # encoded indices (int64) of the asked architectures
        self.asked = 0
        self.hyper: tuple[float, float, float] = (1.0, 0.05, 0.0)
        self.mixes = (0.0,) if p.kernel == "product" else (
            (1.0,) if p.kernel == "additive" else MIXES)
        self.fits = 0

    # ------------------------------------------------------------- helpers
    def _features(self, archs: list[Architecture]) -> np.ndarray:
        assert self.space is not None
        width = self.space.max_steps()
        x = np.full((len(archs), width), -1, dtype=np.int16)
        for i, a in enumerate(archs):
            idx = self.space.encode(a)
            x[i, : len(idx)] = idx
        return x

    def _fit(self, x: np.ndarray, y: np.ndarray) -> GP:
        h = hamming(x, x)
        if self.fits % self.refit_every == 0:
            best: GP | None = None
            width = x.shape[1]
            for length in LENGTH_SCALES:
                product = kernel_of(h, width, length)  # (mix 0: exactly exp(-h / length))
                for mix in self.mixes:
                    k = (1.0 - mix) * product
                    if mix:
                        k = k + mix * (1.0 - h / width)
                    for noise in NOISES:
                        try:
                            gp = GP(x, y, length, noise, mix, k=k)
                        except np.linalg.LinAlgError:
                            continue
                        if best is None or gp.lml > best.lml:
                            best, self.hyper = gp, (length, noise, mix)
            self.fits += 1
            if best is not None:
                return best
        self.fits += 1
        return GP(x, y, *self.hyper, h=h)

    def _warp(self, y: np.ndarray) -> np.ndarray:
        if self.transform == "log_error":
            return np.asarray(-np.log(np.clip(1.0 - y, 1e-4, None)))
        if self.transform == "copula":
            return copula(y)
        return y

    def _simple(self) -> bool:
        """Fixed-length space without masks: candidates are built as index arrays directly."""
        assert self.space is not None
        cls = type(self.space)
        return cls.allowed is SearchSpace.allowed and cls.is_complete is SearchSpace.is_complete

    def _random(self) -> Architecture:
        assert self.space is not None
        return sample_unseen(self.space, self.rng, self.seen)

    def _candidates(self, parents: list[Architecture]) -> list[Architecture] | np.ndarray:
        """Unseen candidates: architectures, or (simple spaces) a matrix of decision indices."""
        assert self.space is not None
        space = self.space
        size = space.size()
        if size is not None and size <= self.pool_all_below:
            return [a for a in space.enumerate() if a.arch_id not in self.seen]
        if self._simple():
            return self._candidate_indices(parents)
        pool: dict[str, Architecture] = {}
        for p in parents:
            for c in neighbours(space, p, self.rng):
                pool.setdefault(c.arch_id, c)
        for _ in range(self.mutations):
            p = parents[int(self.rng.integers(len(parents)))]
            c = mutate(space, mutate(space, p, self.rng), self.rng)
            pool.setdefault(c.arch_id, c)
        for _ in range(self.random_candidates):
            c = space.sample(self.rng)
            pool.setdefault(c.arch_id, c)
        return [c for k, c in pool.items() if k not in self.seen]

    def _candidate_indices(self, parents: list[Architecture]) -> np.ndarray:
        assert self.space is not None
        space, rng = self.space, self.rng
        steps = space.max_steps()
        n_opt = np.array([len(space.options(t)) for t in range(steps)])
        par = np.array([space.encode(p) for p in parents], dtype=np.int64)
        rows = []
        for t in range(steps):  # every single mutation of every parent
            for v in range(n_opt[t]):
                m = par[par[:, t] != v].copy()
                m[:, t] = v
                rows.append(m)
        if self.mutations:
            m = par[rng.integers(len(par), size=self.mutations)].copy()
            for _ in range(2):  # double mutations (a position may repeat: then a single one)
                pos = rng.integers(steps, size=len(m))
                shift = 1 + rng.integers(np.maximum(n_opt[pos] - 1, 1), size=len(m))
                m[np.arange(len(m)), pos] = (m[np.arange(len(m)), pos] + shift) % n_opt[pos]
            rows.append(m)
        if self.random_candidates:
            rows.append(rng.integers(n_opt, size=(self.random_candidates, steps)))
        allc = np.concatenate(rows)
        radix = np.cumprod(np.concatenate([[1], np.maximum(n_opt[:-1], 1)])).astype(np.int64)
        if float(np.prod(np.maximum(n_opt, 1).astype(float))) < 2.0**62:
            _, first = np.unique(allc @ radix, return_index=True)  # rows as mixed-radix keys
            cand = allc[first]
        else:
            cand = np.unique(allc, axis=0)
        keep = [c.tobytes() not in self.seen_rows for c in cand]
        out: np.ndarray = cand[np.asarray(keep, dtype=bool)]
        return out

    # -------------------------------------------------------------- ask/tell
    def ask(self, n: int) -> list[Architecture]:
        with _one_blas_thread():
            return self._ask(n)

    def _ask(self, n: int) -> list[Architecture]:
        assert self.space is not None
        out: list[Architecture] = []
        while len(out) < n and (self.asked < self.n_init or len(self.ys) < 2):
            arch = self._random()
            self._mark(arch)
            out.append(arch)
        if len(out) == n:
            return out
        keep = self._training_points()
        x = np.stack([self.rows[i] for i in keep])
        gp = self._fit(x, self._warp(np.asarray([self.ys[i] for i in keep], dtype=float)))
        mu_obs = gp.posterior_mean(x)
        order = np.argsort(-mu_obs, kind="stable")[: self.parents]
        cands = self._candidates([self.archs[keep[int(i)]] for i in order])
        if len(cands) == 0:
            cands = [self._random()]
        if isinstance(cands, np.ndarray):
            xc = cands.astype(np.int16)
        else:
            xc = self._features(cands)
        mu, sd, v = gp.predict_v(xc)
        if self.acquisition == "thompson" and len(xc) > self.thompson_pool:
            # a joint draw over the most promising candidates only
            top = np.sort(np.argsort(-(mu + 3.0 * sd), kind="stable")[: self.thompson_pool])
            if isinstance(cands, np.ndarray):
                cands = cands[top]
            else:
                cands = [cands[int(i)] for i in top]
            xc, mu, sd, v = xc[top], mu[top], sd[top], v[:, top]
        if self.acquisition == "ucb":
            score = mu + self.beta * sd
        elif self.acquisition == "thompson":
            score = gp.sample(xc, mu, self.rng, v=v)
        else:
            score = expected_improvement(mu, sd, float(mu_obs.max()), self.xi)
        for i in np.argsort(-score, kind="stable")[: n - len(out)]:
            c = cands[int(i)]
            if isinstance(c, Architecture):
                arch = c
            else:
                arch = self.space.decode([int(v) for v in c])
            self._mark(arch)
            out.append(arch)
        return out

    def _mark(self, arch: Architecture, count: bool = True) -> None:
        assert self.space is not None
        self.seen.add(arch.arch_id)
        self.seen_rows.add(np.asarray(self.space.encode(arch), dtype=np.int64).tobytes())
        self.asked += count

    def _training_points(self) -> list[int]:
        """Indices of the GP's training points: all, or (beyond ``max_points``) the best half
        by observation and the most recent ones."""
        n = len(self.ys)
        if n <= self.max_points:
            return list(range(n))
        half = self.max_points // 2
        best = np.argsort(-np.asarray(self.ys), kind="stable")[:half]
        chosen = set(int(i) for i in best)
        i = n - 1
        while len(chosen) < self.max_points:
            chosen.add(i)
            i -= 1
        return sorted(chosen)

    def tell(self, records: list[Record]) -> None:
        assert self.space is not None
        width = self.space.max_steps()
        for r in records:
            if r.ok and math.isfinite(r.val_acc):
                self.archs.append(r.arch)
                self.ys.append(float(r.val_acc))
                row = np.full(width, -1, dtype=np.int16)
                idx = self.space.encode(r.arch)
                row[: len(idx)] = idx
                self.rows.append(row)

    def rebuild(self, told: list[Record], pending: list[Architecture]) -> None:
        self.archs, self.ys, self.rows, self.seen, self.seen_rows = [], [], [], set(), set()
        for r in told:
            self._mark(r.arch, count=False)
        for a in pending:
            self._mark(a, count=False)
        self.tell(told)

    def estimate(self, archs: list[Architecture]) -> np.ndarray | None:
        """The GP posterior mean (warped units: only the order matters) at ``archs``."""
        if len(self.ys) < 2 or not archs:
            return None
        keep = self._training_points()
        with _one_blas_thread():
            gp = GP(np.stack([self.rows[i] for i in keep]),
                    self._warp(np.asarray([self.ys[i] for i in keep])), *self.hyper)
            mu, _ = gp.predict(self._features(archs))
        return mu
