"""``fw.wrap``: a user's ``nn.Module`` seen as a network of named layers.

A ``Network`` holds the user's module without owning it (it is not an ``nn.Module`` itself, so ``.eval()`` or
``.to()`` on anything of ours never reaches the user's model). Inputs are images in [0, 1]; normalization
happens inside. The layer list comes from one traced forward pass on a dummy input, in the order layers
finish computing. A module called several times in one forward pass (torchvision's reused in-place ReLU) is
one layer whose activation is its *last* call; ``Layer.calls`` says how many calls there were.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from .cache import DEFAULT_CACHE_BYTES, ActivationCache, fingerprint, weights_version
from .errors import FeatwidgetError, unknown_layer
from .safety import own_thread, preserved
from .targets import as_target
from .validate import as_batch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    out_shape: tuple  # without the batch dimension
    n_params: int
    calls: int = 1


class _StopForward(Exception):
    """Raised from a hook once every requested layer is computed: the rest of the network is not needed."""


class Network:
    def __init__(self, module: nn.Module, input_size, mean=None, std=None, classes=None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES):
        if not isinstance(module, nn.Module):
            raise FeatwidgetError(f"fw.wrap expects a torch.nn.Module, got {type(module).__name__}.")
        if input_size is None or len(tuple(input_size)) != 3:
            raise FeatwidgetError(
                f"input_size must be (channels, height, width), e.g. (3, 224, 224); got {input_size!r}."
            )
        self.module = module
        self.input_size = tuple(int(s) for s in input_size)
        c = self.input_size[0]
        self.mean = _per_channel(mean, 0.0, c, "mean")
        self.std = _per_channel(std, 1.0, c, "std")
        if bool((self.std <= 0).any()):
            raise FeatwidgetError(f"std must be positive in every channel, got {self.std.flatten().tolist()}.")
        self.cache = ActivationCache(cache_bytes)
        self._trace()
        n_out = self.output_shape[-1] if len(self.output_shape) == 1 else None
        self.classes = _class_names(classes, n_out)

    # ------------------------------------------------------------------ structure
    def _trace(self) -> None:
        names = {m: n for n, m in self.module.named_modules() if n}
        order, shapes, calls = [], {}, {}

        def hook(mod, inp, out):
            name = names[mod]
            if not isinstance(out, torch.Tensor):
                return
            calls[name] = calls.get(name, 0) + 1
            shapes[name] = tuple(out.shape[1:])
            if name not in order:
                order.append(name)

        dummy = torch.zeros((1, *self.input_size), device=self.device)
        with preserved(self.module), torch.no_grad():
            handles = [m.register_forward_hook(own_thread(hook)) for m in names]
            try:
                out = self.module(self.normalize(dummy))
            except Exception as e:  # a wrong input_size is the usual cause
                raise FeatwidgetError(
                    f"The model failed on a dummy input of shape (1, {', '.join(map(str, self.input_size))}): "
                    f"{type(e).__name__}: {e}. Check input_size= in fw.wrap."
                ) from e
            finally:
                for h in handles:
                    h.remove()
        if not isinstance(out, torch.Tensor):
            raise FeatwidgetError(f"The model must return a tensor of scores, it returned {type(out).__name__}.")
        self.output_shape = tuple(out.shape[1:])
        self._modules = {n: m for m, n in names.items()}
        self._calls = calls
        self.layers = [
            Layer(n, type(self._modules[n]).__name__, shapes[n],
                  sum(p.numel() for p in self._modules[n].parameters()), calls[n])
            for n in order
        ]
        self._index = {l.name: i for i, l in enumerate(self.layers)}

    @property
    def device(self) -> torch.device:
        for t in self.module.parameters():
            return t.device
        for t in self.module.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def layer_names(self) -> list[str]:
        return [l.name for l in self.layers]

    @property
    def conv_layers(self) -> list[str]:
        return [l.name for l in self.layers if isinstance(self._modules[l.name], nn.Conv2d)]

    def layer(self, name: str) -> Layer:
        if name not in self._index:
            raise unknown_layer(name, self.layer_names)
        return self.layers[self._index[name]]

    def submodule(self, name: str) -> nn.Module:
        self.layer(name)
        return self._modules[name]

    def deepest(self, names: Iterable[str]) -> str | None:
        names = list(names)
        for n in names:
            self.layer(n)
        return max(names, key=self._index.__getitem__) if names else None

    # ------------------------------------------------------------------ computing
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device, x.dtype)) / self.std.to(x.device, x.dtype)

    def check(self, x) -> torch.Tensor:
        """Validate a user batch against this network (shape, dtype, range, device)."""
        if self._plainly_valid(x):
            return x
        x = as_batch(x, self.input_size)
        dev = self.device
        if x.device != dev:
            raise FeatwidgetError(
                f"The images are on {x.device} but the model is on {dev}; move them with x.to('{dev}')."
            )
        return x

    def _plainly_valid(self, x) -> bool:
        """The common case in one reduction: a float batch of the right shape on the model's device whose
        minimum and maximum lie in [0, 1] (up to rounding) has no NaN (min/max propagate it) and no infinity.
        Anything else goes through ``as_batch``, which names the problem."""
        if not (type(x) is torch.Tensor and x.dtype in (torch.float32, torch.float64) and x.dim() == 4
                and x.shape[0] > 0 and x.shape[1:] == self.input_size and x.device == self.device):
            return False
        lo, hi = torch.aminmax(x)
        return lo.item() >= -1e-3 and hi.item() <= 1 + 1e-3

    def run(self, x: torch.Tensor, layers: Sequence[str] = (), output: bool = True):
        """Forward ``x`` (pixels in [0, 1], unchecked) and return ``(output or None, {layer: activation})``.

        When ``output`` is False the pass stops right after the last call of the deepest requested layer.
        Activations are clones, so a later in-place op in the model (ReLU(inplace=True)) cannot change them,
        and they keep their autograd graph when grad mode is on. The caller is responsible for ``preserved``.
        """
        wanted = {n: self.submodule(n) for n in layers}
        acts: dict[str, torch.Tensor] = {}
        remaining = {n: self._calls[n] for n in wanted}
        by_module: dict[nn.Module, list[str]] = {}
        for n, m in wanted.items():
            by_module.setdefault(m, []).append(n)

        def hook(mod, inp, out):
            for n in by_module[mod]:
                acts[n] = out.clone()
                remaining[n] -= 1
            if not output and all(v <= 0 for v in remaining.values()):
                raise _StopForward

        handles = [m.register_forward_hook(own_thread(hook)) for m in by_module]
        result = None
        try:
            result = self.module(self.normalize(x))
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in wanted if n not in acts]
        if missing:
            raise FeatwidgetError(f"Layer(s) {missing} were not called in this forward pass.")
        return (result if output else None), acts

    def evaluate(self, x: torch.Tensor, target=None) -> torch.Tensor:
        """One value per image of ``target`` (see ``fw.Logit`` etc.), with autograd graph if grad mode is on."""
        t = as_target(target)
        out, acts = self.run(x, t.layers, output=t.needs_output)
        return t.evaluate(out, acts)

    def __call__(self, x) -> torch.Tensor:
        x = self.check(x)
        with preserved(self.module):
            return self.module(self.normalize(x))

    def activations(self, x, layers: Sequence[str] | str | None = None) -> dict[str, torch.Tensor]:
        """``{layer: activation}`` for ``x``; repeated requests for the same input are served from the cache."""
        x = self.check(x)
        if isinstance(layers, str):
            layers = [layers]
        names = self.layer_names if layers is None else list(layers)
        for n in names:
            self.layer(n)
        key = (fingerprint(x), weights_version(self.module))
        found = {n: self.cache.get((key, n)) for n in names}
        missing = [n for n, t in found.items() if t is None]
        if missing:
            with preserved(self.module), torch.no_grad():
                _, acts = self.run(x, missing, output=False)
            for n, t in acts.items():
                self.cache.put((key, n), t)
                found[n] = t
        return {n: found[n] for n in names}

    def predict(self, x, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Top-``k`` classes per image as ``(index, label, probability)``."""
        with torch.no_grad():
            probs = torch.softmax(self(x), dim=1)
        k = min(int(k), probs.shape[1])
        p, i = probs.topk(k, dim=1)
        return [[(int(c), self.classes[int(c)], float(q)) for q, c in zip(pr, ix)] for pr, ix in zip(p, i)]

    def receptive_field(self, layer: str):
        from .receptive_field import receptive_field

        return receptive_field(self, layer)

    def __repr__(self):
        return (f"Network({type(self.module).__name__}, input_size={self.input_size}, "
                f"{len(self.layers)} layers, {len(self.classes)} classes)")


def _per_channel(value, default, c, what) -> torch.Tensor:
    v = torch.as_tensor(default if value is None else value, dtype=torch.float32).flatten()
    if v.numel() == 1:
        v = v.expand(c)
    if v.numel() != c:
        raise FeatwidgetError(f"{what} has {v.numel()} values but the input has {c} channel(s).")
    return v.clone().reshape(1, c, 1, 1)


def _class_names(classes, n_out) -> list[str]:
    if classes is not None and hasattr(classes, "meta"):  # a torchvision weights enum
        classes = classes.meta.get("categories")
    if classes is None:
        return [f"class {i}" for i in range(n_out or 0)]
    classes = [str(c) for c in classes]
    if n_out is not None and len(classes) != n_out:
        raise FeatwidgetError(f"Got {len(classes)} class names but the model has {n_out} outputs.")
    return classes


PRESETS = {
    "imagenet": dict(input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD),
}


def wrap(module: nn.Module, input_size=None, mean=None, std=None, classes=None, preset: str | None = None,
         weights=None, cache_bytes: int = DEFAULT_CACHE_BYTES) -> Network:
    """Wrap a model for featwidget. ``preset="imagenet"`` fills ImageNet's input size, mean and std; pass a
    torchvision weights enum as ``weights=`` (or ``classes=``) to get its category names."""
    if isinstance(module, Network):
        return module
    if preset is not None:
        if preset not in PRESETS:
            raise FeatwidgetError(f"Unknown preset {preset!r}; known presets: {', '.join(PRESETS)}.")
        p = PRESETS[preset]
        input_size = input_size or p["input_size"]
        mean = p["mean"] if mean is None else mean
        std = p["std"] if std is None else std
    if classes is None and weights is not None:
        classes = weights
    if input_size is None:
        raise FeatwidgetError(
            "fw.wrap needs input_size=(channels, height, width), e.g. fw.wrap(model, input_size=(3, 224, 224)), "
            "or preset='imagenet'."
        )
    return Network(module, input_size, mean, std, classes, cache_bytes)


_auto: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def as_network(model, x: torch.Tensor | None = None) -> Network:
    """A ``Network`` for ``model``: itself if wrapped already, else a default wrap (mean 0, std 1) sized to ``x``."""
    if isinstance(model, Network):
        return model
    if not isinstance(model, nn.Module):
        raise FeatwidgetError(f"Expected an fw.Network or torch.nn.Module, got {type(model).__name__}.")
    if x is None or not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise FeatwidgetError(
            "A plain nn.Module needs a batch of images (B, C, H, W) to infer its input size; "
            "or wrap it first with fw.wrap(model, input_size=..., mean=..., std=...)."
        )
    size = tuple(x.shape[1:])
    per_model = _auto.setdefault(model, {})
    if size not in per_model:
        per_model[size] = Network(model, size)
    return per_model[size]
