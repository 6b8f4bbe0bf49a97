"""Layer-wise relevance propagation (Bach et al. 2015; rules as in Montavon et al. 2019).

Implemented as a modified gradient. The relevance of a tensor ``a`` is ``a * g``, ``g`` the modified gradient
reaching it; a conv/linear layer ``z = W a + b`` is replaced, for the backward pass only, by

    epsilon     g_a = W^T (g * z / (z + eps sign z))
    gamma       g_a = W_g^T (g * z / z_g),           W_g = W + gamma W+ (on a > 0), W + gamma W- (on a < 0)
    alpha_beta  g_a = alpha W+^T (g z / z+) - beta W-^T (g z / z-)    (positive / negative contributions)
    z^B         the first layer, with pixel bounds l, h (0 and 1 in pixel space, through mean / std):
                R = x W^T c - l W+^T c - h W-^T c,  c = g z / (W x - W+ l - W- h)

via one autograd node (``_Ratio``) whose value is ``z`` and whose backward is the gradient of ``z_mod`` scaled
by ``z / z_mod``. ReLU, max pooling (winner takes all), average pooling and sums
(residual additions, split in proportion to the summands) need no change: for them the plain gradient already
is the LRP-0 rule. A BatchNorm right after a conv/linear layer is folded into it for the call only (folded
copies of the weights; the user's parameters are not touched).

The epsilon rule needs no modified layer at all -- only the gradient at each layer output rescaled -- and runs
as such where it can (lrp_epsilon.py, the same numbers at about the cost of a gradient). Every rule, and the
epsilon rule where that path does not apply, runs the general path below: the forward pass under a
``TorchFunctionMode`` that sees every ``conv2d`` / ``linear`` / ``batch_norm`` call, functional or from a
module. A conv output is kept "pending" until its first consumer
(a metadata read such as BatchNorm's ``dim()`` check does not count) shows whether a BatchNorm follows.
Element-wise nonlinearities other than (leaky) ReLU, gating products and data-dependent normalizations have
no rule here: they raise an error naming the layer (the pass is then repeated with a hook on every module,
to find the name; a pass that succeeds pays for no module hooks).

Arithmetic per conv/linear layer, in passes of the size of ``W a`` (the plain gradient -- the floor -- is
two: ``W a`` forward, ``W^T g`` backward):

    epsilon     2  (the floor's own passes, rescaled: + element-wise work only)
    gamma       3  (``W a`` for the value, ``W_g a``, ``W_g^T``)                          >= 1.5x the floor
    alpha_beta  4  (``[W+; W-] a`` in one call, whose sum is the layer's value -- the model's own ``W a`` is
                   not computed -- and ``[W+; W-]^T`` in one call)                       >= 2x
                3 with beta = 0 (``W a``, ``W+ a``, ``W+^T``)                           >= 1.5x
    z^B         3 extra passes of the first layer (``[W+, W-] [x - l; x - h]`` and its transpose, twice the
                width); on resnet18 at 224 that is about 10 % of the floor.

A folded BatchNorm costs no pass: epsilon never needs the folded weights, and for alpha-beta the scale s folds
into W+ a and W- a per channel ((s W)+ a is s W+ a where s > 0 and s W- a where s < 0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import FeatwidgetError
from ..safety import own_thread, preserved
from ..targets import Combination, LogProb, Prob, Target
from .common import prepare
from .lrp_epsilon import CONV as _CONV, LINEAR as _LINEAR, Rescaled, batch_norm_args, factor

RULES = ("epsilon", "gamma", "alpha_beta")
INPUT_RULES = ("zb", "same")

_UNSUPPORTED = {
    torch._C._nn.gelu: "GELU", F.silu: "SiLU", F.elu: "ELU", F.selu: "SELU", F.celu: "CELU",
    F.hardswish: "Hardswish", F.hardsigmoid: "Hardsigmoid", F.relu6: "ReLU6", F.hardtanh: "Hardtanh",
    F.mish: "Mish", torch._C._nn.softplus: "Softplus", torch.sigmoid: "sigmoid", torch.Tensor.sigmoid: "sigmoid",
    torch.tanh: "tanh", torch.Tensor.tanh: "tanh", F.softmax: "softmax", F.log_softmax: "log_softmax",
    torch.softmax: "softmax", torch.Tensor.softmax: "softmax", F.layer_norm: "LayerNorm",
    F.group_norm: "GroupNorm", F.instance_norm: "InstanceNorm", F.local_response_norm: "LocalResponseNorm",
}
_PRODUCTS = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.mul_,
             torch.Tensor.__imul__, torch.div, torch.Tensor.div, torch.Tensor.__truediv__, torch.Tensor.div_,
             torch.Tensor.__itruediv__, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm}


def lrp(net, x, target=None, rule: str = "epsilon", epsilon: float = 1e-6, gamma: float = 0.25,
        alpha: float = 2.0, beta: float = 1.0, input_rule: str = "zb") -> torch.Tensor:
    """Relevance of every input pixel and channel, (B, C, H, W); for a logit target on a bias-free ReLU
    network the relevances sum to the logit. ``input_rule="zb"`` uses the z^B rule at the first layer,
    "same" the layer rule everywhere.

    LRP explains scores that are sums of contributions: class logits (``None``, an index, ``fw.Logit``),
    hidden units and channel means, and combinations of these (``fw.Logit(c) - fw.Logit(d)``: what speaks
    for c against d). ``fw.Prob`` / ``fw.LogProb`` pass through the softmax, which couples every class and
    has no relevance-conserving rule; they raise an error that points to the logit instead."""
    if rule not in RULES:
        raise FeatwidgetError(f"Unknown LRP rule {rule!r}; use one of {', '.join(map(repr, RULES))}.")
    if input_rule not in INPUT_RULES:
        raise FeatwidgetError(f"Unknown input_rule {input_rule!r}; use 'zb' (pixel bounds) or 'same'.")
    for name, v in (("epsilon", epsilon), ("gamma", gamma), ("alpha", alpha), ("beta", beta)):
        if not (isinstance(v, (int, float)) and v >= 0 and v < float("inf")):
            raise FeatwidgetError(f"{name} must be a finite number of zero or more, got {v!r}.")
    if rule == "alpha_beta" and abs(alpha - beta - 1) > 1e-6:
        raise FeatwidgetError(f"The alpha-beta rule conserves relevance only when alpha - beta = 1; got alpha="
                              f"{alpha}, beta={beta}. Try alpha=2, beta=1 or alpha=1, beta=0.")
    net, x, t = prepare(net, x, target)
    _check_target(t)
    xn = net.normalize(x)
    bounds = None
    with preserved(net.module), torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        if input_rule == "zb":
            bounds = tuple(net.normalize(v).requires_grad_(True) for v in (torch.zeros_like(x), torch.ones_like(x)))
        grads = None
        if rule == "epsilon":
            grads = _rescaled_gradient(net, xg, t, float(epsilon), bounds)
        if grads is None:
            grads = _general(net, xg, t, (rule, float(epsilon), float(gamma), float(alpha), float(beta), bounds))
    # d/d(normalized x) = std * d/dx: the relevance of a pixel is its normalized value times that gradient
    relevance = xn * grads[0] * net.std.to(x.device, x.dtype)
    if bounds is not None:
        for b, g in zip(bounds, grads[1:]):
            if g is not None:
                relevance = relevance + b.detach() * g
    return relevance


def _rescaled_gradient(net, xg, t, eps, bounds):
    """The epsilon rule as a rescaled gradient (lrp_epsilon.py): gradients w.r.t. the input (and the pixel
    bounds of the z^B rule), or None where that path does not cover the model."""
    mode = Rescaled(eps, zb=bounds is not None)
    with mode:
        value = net.evaluate(xg, t)
    if not mode.finish(value):
        return None
    if bounds is None or mode.first is None:
        return torch.autograd.grad(value.sum(), [xg, *(bounds or ())], allow_unused=True)
    first = mode.first_output()
    (g,) = torch.autograd.grad(value.sum(), [first.edge])
    layer = mode.first
    L = _parse(layer.func, layer.args, layer.kwargs, first=True)
    L.fold = layer.folded
    z_mod = _zb_mod(L, bounds)
    c = g * first.z.detach() / _stab(z_mod.detach(), eps)
    return torch.autograd.grad(z_mod, [xg, *bounds], c, allow_unused=True)


def _general(net, xg, t, params):
    """Every rule, one decision per operation of the forward pass (``_LRPMode``)."""
    try:
        with _LRPMode(*params):
            value = net.evaluate(xg, t)
    except _NeedsName:
        # Something has no rule. Only now pay for a hook on every module: the same pass again, to name the
        # layer in the error it raises.
        mode = _LRPMode(*params)
        with _LayerNames(net.module, mode), mode:
            net.evaluate(xg, t)
        raise FeatwidgetError("LRP has no rule for an operation of this model (it did not repeat on a "
                              "second pass). Use fw.gradient or fw.integrated_gradients.") from None
    return torch.autograd.grad(value.sum(), [xg, *(params[-1] or ())], allow_unused=True)


def _check_target(t: Target) -> None:
    for _, term in (t.terms if isinstance(t, Combination) else ((1.0, t),)):
        if isinstance(term, (Prob, LogProb)):
            kind = type(term).__name__
            raise FeatwidgetError(
                f"LRP conserves relevance for class scores, not for fw.{kind}: the softmax couples every class "
                f"and has no LRP rule. Explain the logit with target=fw.Logit({term.c!r}) (its relevances sum "
                f"to the logit), a contrast such as fw.Logit({term.c!r}) - fw.Logit(other), or use "
                f"fw.gradient / fw.integrated_gradients for the {kind.lower()} itself."
            )


def _stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    return z + torch.where(z >= 0, eps, -eps).to(z.dtype)


class _NeedsName(Exception):
    """Raised by a pass without layer names where an error message needs one."""


# Tensor methods that read metadata only: a pending layer output passed to them needs no rule yet (BatchNorm's
# input check calls ``dim()`` on a conv output before the BatchNorm that is to be folded into it)
_META = {torch.Tensor.dim, torch.Tensor.size, torch.Tensor.numel, torch.Tensor.ndimension, torch.Tensor.nelement,
         torch.Tensor.__len__, torch.Tensor.is_floating_point, torch.Tensor.is_contiguous, torch.Tensor.stride,
         torch.Tensor.element_size, torch.Tensor.is_complex, torch.Tensor.get_device}
_META_PROPERTIES = {"shape", "dtype", "device", "requires_grad", "grad_fn", "is_leaf", "ndim", "layout",
                    "is_cuda", "is_sparse", "is_quantized", "is_meta", "names", "_version", "output_nr"}


def _reads_metadata(func) -> bool:
    if func in _META:
        return True
    # a property getter (``z.shape``) arrives as the property descriptor's __get__
    return getattr(func, "__name__", None) == "__get__" and \
        getattr(getattr(func, "__self__", None), "__name__", None) in _META_PROPERTIES


class _Layer:
    """A conv/linear call whose output ``z`` waits for its first consumer (a BatchNorm is folded in)."""

    __slots__ = ("func", "a", "weight", "bias", "rest", "kwargs", "z", "first", "fold", "y", "parts")

    def __init__(self, func, a, weight, bias, rest, kwargs, z, first, parts=None):
        self.func, self.a, self.weight, self.bias = func, a, weight, bias
        self.rest, self.kwargs, self.z, self.first = rest, kwargs, z, first
        self.fold = None  # the arguments of a BatchNorm that follows
        self.y = None  # the output with the rule, once a consumer asked for it
        self.parts = parts  # (W+ a, W- a) when the layer's value was computed as their sum (alpha-beta)

    def scale_shift(self):
        """The folded BatchNorm as an affine map per channel: (scale, shift)."""
        p = self.fold
        scale = torch.rsqrt(p["running_var"] + p.get("eps", 1e-5))
        if p.get("weight") is not None:
            scale = scale * p["weight"]
        shift = -p["running_mean"] * scale
        if p.get("bias") is not None:
            shift = shift + p["bias"]
        return scale, shift

    def folded(self):
        """(weight, bias) with the BatchNorm folded in: fresh tensors, the user's parameters stay untouched."""
        if self.fold is None:
            return self.weight, self.bias
        scale, shift = self.scale_shift()
        w = self.weight * scale.reshape((-1,) + (1,) * (self.weight.dim() - 1))
        return w, (shift if self.bias is None else self.bias * scale + shift)

    def __call__(self, a, weight, bias=None):
        return self.func(a, weight, bias, *self.rest, **self.kwargs)

    @property
    def channel_axis(self) -> int:
        """Where the channels of the layer's input and output lie: last for linear, 1 for convolutions."""
        return -1 if self.func in _LINEAR else 1

    @property
    def groups(self) -> int:
        """Convolution groups (1 for a linear layer): weights stack along an axis only when there is one."""
        if self.func in _LINEAR:
            return 1
        return int(self.kwargs.get("groups", self.rest[3] if len(self.rest) > 3 else 1))


class _LRPMode(TorchFunctionMode):
    def __init__(self, rule, eps, gamma, alpha, beta, bounds):
        super().__init__()
        self.rule, self.eps, self.gamma, self.alpha, self.beta, self.bounds = rule, eps, gamma, alpha, beta, bounds
        self.pending: dict[int, _Layer] = {}  # id(z) -> layer; resolved ones too (layer.z keeps the id unique)
        self.first = True
        self.where: list[str] = []
        self.named = False  # set by _LayerNames

    # ------------------------------------------------------------------ dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONV or func in _LINEAR:
            return self._layer(func, args, kwargs)
        if func is F.batch_norm:
            return self._batch_norm(args, kwargs)
        if func in _UNSUPPORTED or func in _PRODUCTS:
            self._check(func, args)
        if self._mentions_pending(args) or (kwargs and self._mentions_pending(kwargs.values())):
            if not _reads_metadata(func):
                args, kwargs = self._resolve_all(args), self._resolve_all(kwargs)
        return func(*args, **kwargs)

    def _mentions_pending(self, args) -> bool:
        pending = self.pending
        for a in args:
            if isinstance(a, torch.Tensor):
                if id(a) in pending:
                    return True
            elif isinstance(a, (list, tuple)) and self._mentions_pending(a):
                return True
        return False

    def _layer_name(self) -> str:
        if not self.named:
            raise _NeedsName
        return (self.where[-1] if self.where else "") or "the model's own forward"

    def _check(self, func, args):
        name = _UNSUPPORTED.get(func)
        if name is None and func in _PRODUCTS:
            tensors = [a for a in args[:2] if isinstance(a, torch.Tensor) and a.requires_grad and a.numel() > 1]
            name = "a product of two activations (gating / attention)" if len(tensors) == 2 else None
        if name is not None:
            layer = self._layer_name()
            raise FeatwidgetError(
                f"LRP has no rule for {name} in layer {layer!r}. LRP here handles conv and linear layers, "
                f"BatchNorm, (leaky) ReLU, max/avg pooling and residual additions. Explain this model with "
                f"fw.gradient, fw.integrated_gradients or fw.grad_cam instead."
            )

    def _layer(self, func, args, kwargs):
        if self._mentions_pending(args) or (kwargs and self._mentions_pending(kwargs.values())):
            args, kwargs = self._resolve_all(args), self._resolve_all(kwargs)
        layer = _parse(func, args, kwargs, self.first)
        a, weight, bias, rest, kwargs = layer.a, layer.weight, layer.bias, layer.rest, layer.kwargs
        if not (isinstance(a, torch.Tensor) and a.requires_grad):
            return func(a, weight, bias, *rest, **kwargs)
        if self.rule == "alpha_beta" and self.beta != 0 and not (layer.first and self.bounds is not None) \
                and layer.groups == 1 and bool((a >= 0).all()):
            # alpha-beta needs W+ a and W- a; their sum is the layer's value, so one stacked call serves for
            # both and the model's own W a is never computed
            parts = func(a, _split_signs(weight), None, *rest, **kwargs)
            layer.parts = parts.chunk(2, layer.channel_axis)
            z = layer.parts[0] + layer.parts[1]
            if bias is not None:
                z = z + _broadcast(bias, z, layer.channel_axis)
        else:
            z = func(a, weight, bias, *rest, **kwargs)
        layer.z = z
        self.pending[id(z)] = layer
        self.first = False
        return z

    def _batch_norm(self, args, kwargs):
        p = batch_norm_args(args, kwargs)
        layer = self.pending.pop(id(p["input"]), None)
        if layer is None:  # a BatchNorm on its own is an affine layer: the epsilon rule on its output
            z = F.batch_norm(**self._resolve_all(p))
            return self._through(z, z) if z.requires_grad else z
        if p.get("training", False) or p["running_mean"] is None:
            raise FeatwidgetError(
                f"LRP can fold a BatchNorm into the layer before it only with running statistics; the one in "
                f"layer {self._layer_name()!r} uses batch statistics (track_running_stats=False). Use "
                f"fw.gradient or fw.integrated_gradients for this model."
            )
        z = F.batch_norm(**p)
        folded = _Layer(layer.func, layer.a, layer.weight, layer.bias, layer.rest, layer.kwargs, z, layer.first,
                        layer.parts)
        folded.fold = p  # folded into the weights only if the rule needs them (not for epsilon)
        self.pending[id(z)] = folded
        return z

    # ------------------------------------------------------------------ rules
    def _resolve_all(self, obj):
        if isinstance(obj, torch.Tensor):
            layer = self.pending.get(id(obj))
            return obj if layer is None or layer.z is not obj else self._resolve(layer)
        if isinstance(obj, (list, tuple)):
            return type(obj)(self._resolve_all(o) for o in obj)
        if isinstance(obj, dict):
            return {k: self._resolve_all(v) for k, v in obj.items()}
        return obj

    def _resolve(self, layer: _Layer) -> torch.Tensor:
        if layer.y is None:
            layer.y = self._rule(layer)
        return layer.y

    def _through(self, z, z_mod, k: float = 1.0):
        """Value ``k z``; backward: the gradient of ``z_mod`` scaled by ``z / z_mod`` (the LRP identity)."""
        return _Ratio.apply(z.detach(), z_mod, self.eps, k)

    def _alpha_beta_from_parts(self, L: _Layer) -> torch.Tensor:
        """z+ and z- of the (folded) layer from W+ a and W- a: a BatchNorm scale s folds in per channel,
        (s W)+ a = s W+ a where s > 0 and s W- a where s < 0 (and the other way round for (s W)-)."""
        p, n = L.parts
        axis = L.channel_axis
        b = L.bias
        if L.fold is not None:
            scale, shift = L.scale_shift()
            b = shift if b is None else b * scale + shift
            s = _broadcast(scale, p, axis)
            up = s > 0
            p, n = torch.where(up, s * p, s * n), torch.where(up, s * n, s * p)
        if b is not None:
            p = p + _broadcast(b.clamp(min=0), p, axis)
            n = n + _broadcast(b.clamp(max=0), n, axis)
        return self._through(L.z, p, self.alpha) + self._through(L.z, n, -self.beta)

    def _rule(self, L: _Layer) -> torch.Tensor:
        z, a = L.z, L.a
        if self.rule == "epsilon" and not (L.first and self.bounds is not None):
            return self._through(z, z)  # the plain graph through conv and BatchNorm already is W'^T
        if L.parts is not None:
            return self._alpha_beta_from_parts(L)
        if L.first and self.bounds is not None:
            return self._through(z, _zb_mod(L, self.bounds))
        w, b = L.folded()
        # after a ReLU the input has no negative part: skip its half of the computation
        ap, an = (a, None) if bool((a >= 0).all()) else (a.clamp(min=0), a.clamp(max=0))
        if self.rule == "gamma":
            g = self.gamma
            z_mod = L(ap, _lifted(w, g, True), None if b is None else _lifted(b, g, True))
            if an is not None:
                z_mod = z_mod + L(an, _lifted(w, g, False))
            return self._through(z, z_mod)
        wp, wn = _pos(w), _neg(w)
        if self.beta == 0:  # alpha = 1: the negative contributions get no relevance and need no pass
            zp = L(ap, wp, _pos(b))
            return self._through(z, zp if an is None else zp + L(an, wn))
        if an is None and L.groups == 1:
            # W+ a and W- a in one call, the weights stacked on the output axis; its backward is one pass too
            zp, zn = L(ap, torch.cat((wp, wn)), None if b is None else torch.cat((_pos(b), _neg(b)))).chunk(
                2, L.channel_axis)
        else:
            zp, zn = L(ap, wp, _pos(b)), L(ap, wn, _neg(b))
            if an is not None:
                zp, zn = zp + L(an, wn), zn + L(an, wp)
        return self._through(z, zp, self.alpha) + self._through(z, zn, -self.beta)


def _pos(t):
    return None if t is None else t.clamp(min=0)


def _neg(t):
    return None if t is None else t.clamp(max=0)


def _parse(func, args, kwargs, first: bool) -> _Layer:
    """A conv / linear call's arguments, whether given by position or by name, as a ``_Layer``."""
    kwargs = dict(kwargs)
    a = args[0] if args else kwargs.pop("input")
    weight = args[1] if len(args) > 1 else kwargs.pop("weight")
    bias = args[2] if len(args) > 2 else kwargs.pop("bias", None)
    return _Layer(func, a, weight, bias, tuple(args[3:]), kwargs, None, first)


def _zb_mod(L: _Layer, bounds) -> torch.Tensor:
    """The z^B rule's denominator at the first layer, W x - W+ l - W- h = W+ (x - l) + W- (x - h), as one call
    with the two weights side by side on the input axis (its backward is one pass too; the layer's own W x
    is not needed)."""
    a = L.a
    w, _ = L.folded()
    lo, hi = (_shaped(b, a) for b in bounds)
    if L.groups == 1:
        return L(torch.cat((a - lo, a - hi), L.channel_axis), torch.cat((_pos(w), _neg(w)), 1))
    return L(a - lo, _pos(w)) + L(a - hi, _neg(w))


def _shaped(bound, a):
    """The pixel bound laid out as the first layer's input (which may be the image flattened)."""
    if bound.shape == a.shape:
        return bound
    if bound.numel() == a.numel():
        return bound.reshape(a.shape)
    raise FeatwidgetError(
        f"The z^B input rule needs the first layer to read the image itself (possibly reshaped), but it "
        f"reads a tensor of shape {tuple(a.shape)}. Use fw.lrp(..., input_rule='same')."
    )


def _lifted(w: torch.Tensor, gamma: float, positive: bool) -> torch.Tensor:
    """``w + gamma w+`` (or ``w-``) built in one new tensor: vgg16's first fully connected weight is 400 MB, and
    three fresh temporaries of that size cost more than the layer's forward and backward together."""
    out = w.clamp(min=0) if positive else w.clamp(max=0)
    return out.mul_(gamma).add_(w)


def _split_signs(w: torch.Tensor) -> torch.Tensor:
    """``cat((w+, w-))`` on the output axis, written straight into one tensor (no temporaries: see ``_lifted``)."""
    out = torch.empty((2 * w.shape[0], *w.shape[1:]), dtype=w.dtype, device=w.device)
    torch.clamp(w, min=0, out=out[:w.shape[0]])
    torch.clamp(w, max=0, out=out[w.shape[0]:])
    return out


def _broadcast(v: torch.Tensor, z: torch.Tensor, axis: int) -> torch.Tensor:
    """A per-channel vector laid out to broadcast over ``z`` whose channels lie on ``axis``."""
    return v if axis == -1 else v.reshape((-1,) + (1,) * (z.dim() - 2))


class _Ratio(torch.autograd.Function):
    """Forward ``k z``; backward ``k g z / (z_mod + eps sign z_mod)`` into ``z_mod``. One fused node instead of
    the usual ``z_mod * (z / z_mod).detach() + (...).detach()`` arithmetic (about eight passes fewer)."""

    @staticmethod
    def forward(ctx, z, z_mod, eps, k):
        ctx.save_for_backward(z, z_mod)
        ctx.eps, ctx.k = eps, k
        return z * k if k != 1.0 else z.clone()

    @staticmethod
    def backward(ctx, g):
        z, z_mod = ctx.saved_tensors
        if z_mod is z or z_mod.data_ptr() == z.data_ptr():
            r = factor(z, ctx.eps)  # epsilon rule: z / (z + eps sign z) = |z| / (|z| + eps)
        else:
            r = z / _stab(z_mod, ctx.eps)
        r.mul_(g)
        if ctx.k != 1.0:
            r.mul_(ctx.k)
        return None, r, None, None


class _LayerNames:
    """Tracks which layer is running (for error messages) with hooks removed on exit."""

    def __init__(self, module, mode: _LRPMode):
        self.module, self.mode, self.handles = module, mode, []

    def __enter__(self):
        self.mode.named = True
        stack = self.mode.where
        for name, m in self.module.named_modules():
            label = name or type(m).__name__
            self.handles.append(m.register_forward_pre_hook(own_thread(lambda mod, inp, label=label: stack.append(label))))
            self.handles.append(m.register_forward_hook(own_thread(lambda mod, inp, out: stack.pop() and None)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.mode.where.clear()
        return False
