"""``pbt_gan``: GAN member training for PBT-NAS (seed 004, ALGORITHMS.md 5.3), step by step.

A member is a :class:`~nasforge.spaces.gan.GAN` (generator ``gen``, spectral-norm discriminator
``dis``, generator EMA ``gen_ema``) with **two named Adam optimisers**, ``G`` and ``D`` (lr 2e-4,
betas (0, 0.9), eps 1e-4, no weight decay). Their states travel in the checkpoint together,
keyed by parameter name (``gen.*`` / ``dis.*``), so PBT-NAS resets exactly the replaced layers'
moments (quirk P3 default) and keeps the base's elsewhere, in both optimisers.

Training (one unit = ``batches_per_unit`` discriminator batches): hinge loss; D is updated every
batch on ``batch_size`` real and as many generated images; G every ``n_critic`` batches (counted
across units and PBT steps) on ``g_batch_mult x batch_size`` latents; after every G update the
EMA moves, ``ema = decay * ema + (1 - decay) * gen`` (decay 0.999; buffers copied). Images are
scaled to [-1, 1].

Fitness = -FID of ``fid_samples`` EMA-generator images (latents from the evaluation seed)
against the training images' statistics; the record also stores ``fid`` itself, and the run's
objective is ``fid`` (minimize), so ``show`` and tables print the FID. See
:mod:`nasforge.evaluators.fid`: by default the features are those of a small classifier trained
once on the task's images, **not comparable with published Inception FIDs**. The final report
adds ``final_fid`` (``final_fid_samples`` samples) and ``test_fid`` (against the test split) and
writes ``samples.png``, a grid of the chosen generator's images.

Deviations (CPU scale): widths, latent size and the number of samples for FID are small
(seed: gf 256, df 128, z 120, FID on 5,000 samples with clean-fid).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.data.base import Task
from nasforge.evaluators.base import EVALUATORS
from nasforge.evaluators.fid import (
    NOT_INCEPTION,
    features_of,
    frechet_distance,
    gaussian_stats,
    inception_features,
    train_feature_net,
)
from nasforge.evaluators.pbt import MemberTrainer, StepOut, TestScore
from nasforge.exceptions import ConfigError
from nasforge.logging import get_logger
from nasforge.objectives import Objective
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.gan import GAN, GAN_SPACES, is_sn_vector

_logger = get_logger(__name__)
FID = Objective("fid", "minimize", "FID (small-classifier features, not Inception)")
SAMPLES_PNG = "samples.png"


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``."""
    return torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean()


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: ``-E[D(G(z))]``."""
    return -fake.mean()


def g_step_due(batch: int, n_critic: int) -> bool:
    """Whether D batch number ``batch`` (0-based, counted over the member's life) is followed by a
    G update: every ``n_critic``-th batch."""
    return (batch + 1) % n_critic == 0


@torch.no_grad()
def ema_update(ema: nn.Module, gen: nn.Module, decay: float) -> None:
    for pe, p in zip(ema.parameters(), gen.parameters()):
        pe.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
    for be, b in zip(ema.buffers(), gen.buffers()):
        be.copy_(b)


class PBTGANParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    batch_size: int = Field(default=32, ge=2, description="D batch (seed: 40 on CIFAR-10)")
    n_critic: int = Field(default=5, ge=1, description="D batches per G update (seed: 5)")
    g_batch_mult: int = Field(default=2, ge=1, description="G batch = this x batch_size")
    batches_per_unit: int = Field(default=50, ge=1, description="D batches per PBT unit")
    lr: float = Field(default=2e-4, gt=0)
    beta1: float = Field(default=0.0, ge=0, lt=1)
    beta2: float = Field(default=0.9, ge=0, lt=1)
    eps: float = Field(default=1e-4, gt=0)
    ema: float = Field(default=0.999, ge=0, lt=1, description="generator EMA decay")
    fid_samples: int = Field(default=500, ge=16, description="generated images per fitness")
    final_fid_samples: int = Field(default=2000, ge=16, description="for the final report")
    features: Literal["classifier", "inception"] = Field(
        default="classifier", description="FID features: a small classifier trained on the "
        "task (default; not comparable with published FIDs) or Inception (needs its weights)")
    feature_dim: int = Field(default=32, ge=2, le=2048, description="classifier features")
    feature_epochs: int = Field(default=3, ge=1, description="classifier training epochs")
    feature_seed: int = Field(default=0, description="seed of the feature classifier")
    feature_cache: str | None = Field(
        default=None, description="folder that keeps the trained feature classifier across runs "
        "and processes (key: the task's content hash and the feature settings); unset: kept "
        "in memory for the process only")
    inception_weights: str | None = Field(
        default=None, description="features: inception: a local InceptionV3 weights file "
        "(torch-fidelity's); unset: torch's hub cache")
    full_units: int = Field(default=4, ge=1, description="units of a stand-alone evaluate()")
    threads: int = Field(default=1, ge=1, description="torch threads of every training step")


@EVALUATORS.register("pbt_gan")
class PBTGANTrainer(MemberTrainer):
    """GAN member trainer for the ``gan_hard`` and ``gan`` spaces (module docstring)."""

    name: ClassVar[str] = "pbt_gan"
    Params: ClassVar[type[BaseModel]] = PBTGANParams
    unit: ClassVar[str] = "batch block"
    objective: Objective = FID

    def __init__(
        self, *, space: SearchSpace, task: Task, device: torch.device | str = "cpu",
        **params: Any,
    ) -> None:
        self.p = PBTGANParams(**params)
        if not isinstance(space, GAN_SPACES):
            raise ConfigError(
                f"evaluator pbt_gan needs a GAN space; got {space.name!r}; allowed: gan_hard, gan"
            )
        shape = tuple(task.input_shape)
        if task.kind != "classification" or len(shape) != 3:
            raise ConfigError(
                f"evaluator pbt_gan needs an image task (C, H, W) with class labels (for the FID "
                f"features); task {task.name!r} has input shape {shape} ({task.kind}); allowed: "
                "digits, mnist5k32, cifar10, stl10, image_folder"
            )
        want = (space.p.img_channels, space.p.resolution, space.p.resolution)
        if shape != want:
            raise ConfigError(
                f"space {space.name} builds {want} images but task {task.name!r} has {shape}; "
                f"set space.img_channels {shape[0]} and space.resolution {shape[1]}"
            )
        self.space, self.task, self.device = space, task, torch.device(device)
        self.threads, self.full_units = self.p.threads, self.p.full_units
        self.real = task.train.x.float() * 2.0 - 1.0  # [0, 1] -> [-1, 1]
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # the same numbers in every process and executor
        try:
            self._setup_features(task)
        finally:
            torch.set_num_threads(prev)
        _logger.info("pbt_gan: %s", NOT_INCEPTION if self.p.features == "classifier"
                     else "FID in Inception features")

    def _setup_features(self, task: Task) -> None:
        self._feat: nn.Module
        if self.p.features == "inception":
            self._feat = _InceptionFeatures(inception_features(self.p.inception_weights))
            self.feature_train_acc = float("nan")
        else:
            key = (task.content_hash, self.p.feature_dim, self.p.feature_epochs,
                   self.p.feature_seed)
            self._feat, self.feature_train_acc = train_feature_net(
                self.real, task.train.y.long(), task.num_classes, dim=self.p.feature_dim,
                epochs=self.p.feature_epochs, seed=self.p.feature_seed, key=key,
                cache_dir=self.p.feature_cache)
        self.train_stats = gaussian_stats(features_of(self._feat, self.real))
        self._test_stats: tuple[np.ndarray, np.ndarray] | None = None

    def settings(self) -> dict[str, Any]:
        """The params that change results: not ``threads`` nor where the classifier is kept;
        the Inception weights file only when one is named (earlier fingerprints unchanged)."""
        out = {"name": self.name, **self.p.model_dump(
            exclude={"threads", "feature_cache", "inception_weights"})}
        if self.p.inception_weights is not None:
            out["inception_weights"] = self.p.inception_weights
        return out

    def objectives(self) -> list[str]:
        return ["fid"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.task.input_shape)

    @property
    def num_classes(self) -> int:
        return self.task.num_classes

    def task_meta(self) -> dict[str, Any] | None:
        return None

    def build(self, arch: Architecture) -> nn.Module:
        return self.space.build(arch, self.input_shape, 0)

    # ------------------------------------------------------------------------- optimisers
    def _adam(self, params: Any) -> torch.optim.Optimizer:
        p = self.p
        return torch.optim.Adam(params, lr=p.lr, betas=(p.beta1, p.beta2), eps=p.eps)

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        raise NotImplementedError("pbt_gan has two optimisers: use make_optimizers")

    def make_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        gan = _gan(model)
        return {"G": self._adam(gan.gen.parameters()), "D": self._adam(gan.dis.parameters())}

    def optimizer_groups(self, model: nn.Module) -> dict[str, list[str]]:
        names = [n for n, _ in model.named_parameters()]
        return {"G": [n for n in names if n.startswith("gen.")],
                "D": [n for n in names if n.startswith("dis.")]}

    def inherit_exactly(self, name: str) -> bool:
        return name.startswith("gen_ema.") or is_sn_vector(name)

    # --------------------------------------------------------------------------- training
    def _train(
        self, model: nn.Module, opt: torch.optim.Optimizer, units: int, seed: int,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        raise NotImplementedError("pbt_gan trains with its two optimisers: see _train_all")

    def _train_all(
        self, model: nn.Module, opts: dict[str, torch.optim.Optimizer], units: int, seed: int,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # the projections' dropout draws from torch's global generator: seed it for the step
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self._train_gan(model, opts, units, seed, extra)

    def _train_gan(
        self, model: nn.Module, opts: dict[str, torch.optim.Optimizer], units: int, seed: int,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        p = self.p
        gan = _gan(model)
        gen, dis, ema = gan.gen, gan.dis, gan.gen_ema
        opt_g, opt_d = opts["G"], opts["D"]
        real_all = self.real.to(self.device)
        g = torch.Generator().manual_seed(int(seed))
        batch = int(extra.get("batches", 0))
        latent = gan.latent
        model.train()
        d_losses, g_losses = [], []
        for _ in range(units * p.batches_per_unit):
            idx = torch.randint(len(real_all), (p.batch_size,), generator=g).to(self.device)
            z = torch.randn(p.batch_size, latent, generator=g).to(self.device)
            with torch.no_grad():
                fake = gen(z)
            loss_d = hinge_d_loss(dis(real_all[idx]), dis(fake))
            if not torch.isfinite(loss_d):
                raise FloatingPointError("non-finite discriminator loss")
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            d_losses.append(float(loss_d.detach()))
            if g_step_due(batch, p.n_critic):
                z = torch.randn(p.g_batch_mult * p.batch_size, latent, generator=g).to(
                    self.device)
                loss_g = hinge_g_loss(dis(gen(z)))
                if not torch.isfinite(loss_g):
                    raise FloatingPointError("non-finite generator loss")
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                opt_d.zero_grad(set_to_none=True)  # D's gradients of the G step are not used
                ema_update(ema, gen, p.ema)
                g_losses.append(float(loss_g.detach()))
            batch += 1
        metrics = {"d_loss": float(np.mean(d_losses[-p.batches_per_unit:])),
                   "g_loss": float(np.mean(g_losses)) if g_losses else float("nan"),
                   "g_steps": len(g_losses)}
        return metrics, {**extra, "batches": batch}

    # ---------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def sample(self, model: nn.Module, n: int, seed: int) -> torch.Tensor:
        """``n`` EMA-generator images in [-1, 1] from latents of ``seed`` (CPU)."""
        model.eval()
        g = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, _gan(model).latent, generator=g).to(self.device)
        out = torch.cat([model(z[i:i + 500]).cpu() for i in range(0, n, 500)])
        return out

    def fid(self, model: nn.Module, n: int, seed: int,
            stats: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        mu, sigma = stats if stats is not None else self.train_stats
        f = features_of(self._feat, self.sample(model, n, seed))
        m2, s2 = gaussian_stats(f)
        return frechet_distance(m2, s2, mu, sigma)

    def fitness(self, model: nn.Module, *, eval_seed: int) -> float:
        return -self.fid(model, self.p.fid_samples, eval_seed)

    def train_step(
        self, arch: Architecture, ckpt: dict[str, Any], units: int, *, seed: int, eval_seed: int
    ) -> StepOut:
        out = super().train_step(arch, ckpt, units, seed=seed, eval_seed=eval_seed)
        out.metrics["fid"] = -out.fitness
        return out

    def test_score(self, model: nn.Module, *, seed: int) -> TestScore:
        """FID against the test images (the report's test score), and against the training
        images, with the feature extractor it was measured in."""
        if self._test_stats is None:
            prev = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                self._test_stats = gaussian_stats(
                    features_of(self._feat, self.task.test.x.float() * 2.0 - 1.0))
            finally:
                torch.set_num_threads(prev)
        n = self.p.final_fid_samples
        return TestScore(self.fid(model, n, seed, self._test_stats), extra={
            "final_fid": self.fid(model, n, seed),
            "fid_features": self.p.features,
            "fid_note": NOT_INCEPTION if self.p.features == "classifier" else "Inception",
            "feature_train_acc": self.feature_train_acc,
        })

    def save_artifacts(self, model: nn.Module, run_dir: Any, *, seed: int) -> dict[str, Any]:
        path = Path(run_dir) / SAMPLES_PNG
        write_grid_png(self.sample(model, 64, seed), path)
        return {"samples": SAMPLES_PNG}


def _gan(model: nn.Module) -> GAN:
    if not isinstance(model, GAN):
        raise TypeError(f"pbt_gan trains GAN members, got {type(model).__name__}")
    return model


class _InceptionFeatures(nn.Module):
    """[-1, 1] images -> uint8 RGB for torchmetrics' InceptionV3 (2048 pool features)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        out = self.net(x)
        if isinstance(out, (tuple, list)):  # torch-fidelity: one tensor per requested feature
            out = out[0]
        return out.reshape(len(x), -1)


def grid_image(images: torch.Tensor, cols: int = 8, pad: int = 1) -> np.ndarray:
    """``(N, C, H, W)`` images in [-1, 1] -> one ``(rows*(H+pad), cols*(W+pad), C)`` uint8 grid."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    n, h, w, c = x.shape
    rows = -(-n // cols)
    out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h,
            pad + k * (w + pad):pad + k * (w + pad) + w] = x[i]
    return out


def write_grid_png(images: torch.Tensor, path: Path, cols: int = 8) -> None:
    """A PNG of the image grid, written with zlib alone (no imaging library needed)."""
    img = grid_image(images, cols)
    h, w, c = img.shape
    if c not in (1, 3):
        img, c = img[..., :3], 3
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    color = 0 if c == 1 else 2
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    tmp = path.with_suffix(".png.tmp")
    tmp.write_bytes(png)
    tmp.replace(path)
