"""A small image generator for DGN-AM (``fw.maximize(..., param="generator")``, Nguyen et al. 2016).

A variational autoencoder trained on a demo dataset: the decoder maps a 32-number code to a 64x64 image,
the encoder maps an image back to a code (used to start from or return to a given picture). Maximizing a
neuron through the decoder only reaches images the decoder can draw -- a learned natural-image prior, here
"images that look like the demo data". The KL term keeps codes near N(0, 1), so random codes are sensible
starting points.

Training (a few minutes on 2 CPU cores): ``python -m featwidget.demo.generator shapes``. Weights go to
``featwidget/demo/weights/generator_<name>.pt`` (stored in float16, about 0.7 MB) and are loaded with
``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.errors import FeatwidgetError

WEIGHTS = Path(__file__).parent / "weights"
LATENT = 32


class ImageGenerator(nn.Module):
    def __init__(self, channels: int = 3, size: int = 64, latent: int = LATENT, width: int = 64):
        super().__init__()
        if size % 16:
            raise FeatwidgetError(f"The generator's image size must be a multiple of 16, got {size}.")
        self.channels, self.latent, self.out_size = channels, latent, (size, size)
        w, s = width, size // 16
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w // 4, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w // 4, w // 2, 4, 2, 1), nn.BatchNorm2d(w // 2), nn.LeakyReLU(0.2),
            nn.Conv2d(w // 2, w, 4, 2, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2),
            nn.Conv2d(w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(w * s * s, 2 * latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, w * s * s), nn.Unflatten(1, (w, s, s)), nn.ReLU(),
            nn.ConvTranspose2d(w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, w // 2, 4, 2, 1), nn.BatchNorm2d(w // 2), nn.ReLU(),
            nn.ConvTranspose2d(w // 2, w // 4, 4, 2, 1), nn.BatchNorm2d(w // 4), nn.ReLU(),
            nn.ConvTranspose2d(w // 4, channels, 4, 2, 1), nn.Sigmoid(),
        )

    def encode_stats(self, img: torch.Tensor):
        mu, logvar = self.encoder(2 * img - 1).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        return self.encode_stats(img)[0]

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, img):
        mu, logvar = self.encode_stats(img)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(z), mu, logvar


def path_for(name: str) -> Path:
    return WEIGHTS / f"generator_{name}.pt"


def load(name: str = "shapes") -> ImageGenerator:
    """The shipped generator for demo ``name`` (in eval mode, parameters frozen)."""
    p = path_for(name)
    if not p.exists():
        known = sorted(q.stem[len("generator_"):] for q in WEIGHTS.glob("generator_*.pt"))
        raise FeatwidgetError(
            f"No generator weights for {name!r} (looked for {p.name}); shipped: {', '.join(known) or 'none'}. "
            f"Train one with: python -m featwidget.demo.generator {name}"
        )
    blob = torch.load(p, map_location="cpu", weights_only=True)
    cfg = blob["config"]
    g = ImageGenerator(int(cfg["channels"]), int(cfg["size"]), int(cfg["latent"]), int(cfg["width"]))
    g.load_state_dict({k: v.float() for k, v in blob["state"].items()})
    return g.eval().requires_grad_(False)


def train(name: str = "shapes", steps: int = 1500, batch: int = 32, n_train: int = 8000, lr: float = 2e-3,
          beta: float = 0.5, seed: int = 0, log_every: int = 250) -> tuple[ImageGenerator, dict]:
    """Train the VAE on fresh demo images: per-pixel squared error (summed) + ``beta`` * KL."""
    from .datasets import dataset

    torch.manual_seed(seed)
    data = dataset(name, n_train, seed=seed, split="train").images
    c, h, _ = data.shape[1:]
    g = ImageGenerator(c, h)
    opt = torch.optim.Adam(g.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0, log = time.time(), []
    for step in range(steps):
        idx = torch.randint(0, data.shape[0], (batch,))
        x = data[idx]
        recon, mu, logvar = g(x)
        rec = F.mse_loss(recon, x, reduction="sum") / batch
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        loss = rec + beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            log.append({"step": step, "reconstruction": float(rec), "kl": float(kl), "seconds": time.time() - t0})
            print(json.dumps(log[-1]), flush=True)
    g.eval()
    test = dataset(name, 500, seed=seed, split="test").images
    with torch.no_grad():
        err = F.mse_loss(g.decode(g.encode(test)), test).item()
        prior = g.decode(torch.randn(500, g.latent))
    report = {"name": name, "steps": steps, "seconds": time.time() - t0, "test_mse": err,
              "baseline_mse_mean_image": F.mse_loss(test.mean(0, keepdim=True).expand_as(test), test).item(),
              "prior_sample_std": float(prior.std()), "log": log}
    return g, report


def save(g: ImageGenerator, path: Path) -> None:
    blob = {"config": {"channels": g.channels, "size": g.out_size[0], "latent": g.latent,
                       "width": g.decoder[0].out_features // (g.out_size[0] // 16) ** 2},
            "state": {k: v.half() if v.is_floating_point() else v for k, v in g.state_dict().items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", nargs="?", default="shapes", help="demo dataset: shapes or digits")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g, report = train(args.name, steps=args.steps)
    save(g, path_for(args.name))
    print(json.dumps({k: v for k, v in report.items() if k != "log"}, indent=1))
    return report


if __name__ == "__main__":
    main()
