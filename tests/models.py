"""Small and torchvision models the safety contract is checked on (DESIGN.md section 4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class FunctionalReluNet(nn.Module):
    """ReLUs called as F.relu / torch.relu inside forward: no ReLU module to hook."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


class GeluNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.GELU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.GELU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def tiny_gap_cnn(classes: int = 4, seed: int = 0) -> nn.Module:
    """The smallest net every method applies to (CAM included): conv-BN-in-place ReLU-pool, conv-ReLU, global
    average pooling + one linear layer. Seeded; in train mode, as a user might hand it over."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, classes),
    ).train()


def zoo(size: int = 64) -> dict[str, tuple[nn.Module, tuple]]:
    """name -> (module in train mode, input_size). torchvision models have weights=None (nothing is fetched)."""
    torch.manual_seed(0)
    tv = torchvision.models
    models = {
        "resnet18": tv.resnet18(weights=None, num_classes=10),
        "vgg11": tv.vgg11(weights=None, num_classes=10),
        "alexnet": tv.alexnet(weights=None, num_classes=10),
        "mobilenet_v3_small": tv.mobilenet_v3_small(weights=None, num_classes=10),
        "functional_relu": FunctionalReluNet(),
        "gelu": GeluNet(),
    }
    sizes = {"alexnet": 96}  # alexnet's stem needs a larger input than 64
    out = {}
    for name, m in models.items():
        m.train()  # train mode on purpose: BatchNorm statistics must not move under featwidget
        out[name] = (m, (3, sizes.get(name, size), sizes.get(name, size)))
    return out


def completeness_errors(net, x: torch.Tensor, steps: int, **kwargs) -> dict[bool, torch.Tensor]:
    """Per image |sum of IG attributions - (f(x) - f(0))| / |f(x) - f(0)| for the predicted logit and a black
    baseline, with the adaptive rule (key True) and the midpoint rule (key False)."""
    import featwidget as fw

    rows = torch.arange(x.shape[0])
    with torch.no_grad():
        logits = net(x)
        c = logits.argmax(1)
        f = logits[rows, c] - net(torch.zeros_like(x))[rows, c]
    errors = {}
    for adaptive in (True, False):
        ig = fw.integrated_gradients(net, x, c, baseline="black", steps=steps, adaptive=adaptive, **kwargs)
        errors[adaptive] = (ig.flatten(1).sum(1) - f).abs() / f.abs()
    return errors
