"""Train a demo model from a fixed seed: ``python -m featwidget.demo.train NAME [--out PATH] [--steps N] ...``.

This is how the shipped weights in ``featwidget/demo/weights/`` were made. Every epoch trains on freshly
generated images (split="train"; the data itself is the augmentation) and the result is measured on 1,000
held-out images (split="test", which no training stream ever produces). Runs on the CPU with 2 threads.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .catalog import SPECS, Spec
from .datasets import NAMES, dataset

EVAL_SEED = 1  # the held-out set the script reports on


def dihedral(x: torch.Tensor) -> torch.Tensor:
    """One random symmetry of the square per batch (rotation by k * 90 degrees, optional mirror)."""
    x = torch.rot90(x, int(torch.randint(4, ())), dims=(2, 3))
    return x.flip(3) if bool(torch.rand(()) < 0.5) else x


def channels(x: torch.Tensor) -> torch.Tensor:
    """A random permutation of the colour channels per image (shape classes do not depend on colour, and the
    black-and-white class marks are unchanged by it)."""
    perm = torch.rand(x.shape[0], x.shape[1]).argsort(1)
    return x.gather(1, perm[:, :, None, None].expand_as(x))


# Shapes keep their class under rotation and mirroring, but a confounded image would move its mark: that
# recipe uses only the channel permutation.
AUGMENTATIONS = {"dihedral": dihedral, "channels": channels}


def normalize(spec: Spec, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(spec.mean).reshape(1, -1, 1, 1)
    std = torch.tensor(spec.std).reshape(1, -1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def accuracy(model: nn.Module, spec: Spec, images: torch.Tensor, labels: torch.Tensor, batch: int = 250) -> float:
    was_training = model.training
    model.eval()
    hits = sum(int((model(normalize(spec, xb)).argmax(1) == yb).sum())
               for xb, yb in zip(images.split(batch), labels.split(batch)))
    model.train(was_training)
    return hits / labels.shape[0]


def held_out(model: nn.Module, spec: Spec, n: int = 1000) -> dict:
    """Accuracy on fresh test images; for the confounded demo also with shuffled and with no marks."""
    confounds = ("class", "random", "none") if spec.name == "shapes-confounded" else (None,)
    result = {}
    for c in confounds:
        d = dataset(spec.name, n, seed=EVAL_SEED, split="test", confound=c)
        result[c or "accuracy"] = accuracy(model, spec, d.images, d.labels)
    return result


def train(name: str, steps: int | None = None, n_train: int | None = None, seed: int = 0,
          batch: int | None = None, lr: float | None = None, log=print) -> nn.Module:
    spec = SPECS[name]
    lr = lr or spec.lr
    steps = steps or spec.steps
    n_train = n_train or spec.n_train
    batch = min(batch or spec.batch, n_train)
    torch.manual_seed(seed)
    model = spec.build()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    per_epoch = n_train // batch
    augment = [AUGMENTATIONS[a] for a in spec.augment]
    start, seen_loss, seen_hits, seen = time.time(), 0.0, 0, 0
    for step in range(steps):
        epoch, i = divmod(step, per_epoch)
        if i == 0 and epoch % spec.passes == 0:  # fresh never-seen images, from a stream fixed by (seed, epoch)
            data = dataset(name, per_epoch * batch, seed=seed * 100_000 + epoch, split="train", noise=spec.noise)
        xb = data.images[i * batch:(i + 1) * batch]
        for aug in augment:
            xb = aug(xb)
        yb = data.labels[i * batch:(i + 1) * batch]
        logits = model(normalize(spec, xb))
        loss = loss_fn(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        seen_loss += loss.item() * yb.shape[0]
        seen_hits += int((logits.argmax(1) == yb).sum())
        seen += yb.shape[0]
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log(f"[{name}] step {step + 1}/{steps}  epoch {epoch}  loss {seen_loss / seen:.3f}  "
                f"train acc {seen_hits / seen:.3f}  lr {sched.get_last_lr()[0]:.2e}  {time.time() - start:.0f}s")
            seen_loss, seen_hits, seen = 0.0, 0, 0
    return model.eval()


def save(model: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, path)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m featwidget.demo.train", description=__doc__.split("\n")[0])
    p.add_argument("name", choices=NAMES)
    p.add_argument("--out", type=Path, default=None, help="where to write the state_dict (default: the shipped "
                                                          "weights file of NAME)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's)")
    p.add_argument("--n-train", type=int, default=None, help="fresh images generated per epoch")
    p.add_argument("--batch", type=int, default=None, help="batch size")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    p.add_argument("--eval", type=int, default=1000, help="held-out images to report accuracy on (0: skip)")
    args = p.parse_args(argv)
    for flag in ("steps", "n_train", "batch", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # restored below: main() is also called in-process by the tests
    spec = SPECS[args.name]
    out = args.out or spec.weights
    start = time.time()
    try:
        model = train(args.name, args.steps, args.n_train, args.seed, args.batch, args.lr)
        elapsed = time.time() - start
        save(model, out)
        report = {"name": args.name, "out": str(out), "train_seconds": round(elapsed, 1)}
        if args.eval:
            report.update(held_out(model, spec, args.eval))
    finally:
        torch.set_num_threads(threads)
    accuracies = {k: v for k, v in report.items() if k not in ("name", "out", "train_seconds")}
    scores = "; held-out accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in accuracies.items())
    print(f"[{args.name}] wrote {out} ({out.stat().st_size / 1e6:.2f} MB) after {elapsed:.0f}s of training"
          + (scores if accuracies else ""))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
