"""The demo architectures: a small ResNet for the shapes, a LeNet for the digits.

``ShapesResNet`` deliberately keeps torchvision's ResNet idioms that visualization code must cope with: each
residual block calls ONE in-place ReLU module twice (``BasicBlock``), BatchNorm everywhere, and the head is
global average pooling followed by a single linear layer, so class activation maps (CAM) apply.
"""
from __future__ import annotations

from torch import nn


class BasicBlock(nn.Module):
    """He et al. (2016) basic residual block, laid out as torchvision's ``BasicBlock``."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ShapesResNet(nn.Module):
    """64x64 RGB -> 10 classes. Stem to 32x32, then three stages of 16/32/64 channels at 16/8/8 px.

    Downsampling early keeps training cheap on a laptop CPU (about 6 M multiply-adds per image) and gives the
    last stage a receptive field (71 px) larger than any shape; the last stage stays at 8x8 so CAM maps keep
    some resolution.
    """

    def __init__(self, num_classes: int = 10, widths=(16, 32, 64)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(widths[0], widths[0], stride=2)
        self.layer2 = BasicBlock(widths[0], widths[1], stride=2)
        self.layer3 = BasicBlock(widths[1], widths[2])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                # Goyal et al. (2017): each block starts as the identity, which speeds up early training
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


class LeNet(nn.Module):
    """LeCun et al. (1998) style: (conv - ReLU - max-pool) x 2, then three fully connected layers."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),   # 16 x 14 x 14
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),             # 32 x 5 x 5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
