"""The grasp-map network's torch modules (torch imported by :func:`build_net` only).

Both archs are small encoder-decoders with a wide receptive field (dilated residual blocks at
1/8 resolution) and four output maps at half the input resolution:

``v2`` (the default)
    stem: two 3x3 convolutions, the first of stride 2 (nothing runs at full resolution);
    channels ``w, 2w, 4w`` at 1/2, 1/4, 1/8; BatchNorm (folded into the convolutions by ONNX
    Runtime, so inference pays nothing for it); a 1x1 head. 0.9 GMAC at 320x240 with w = 16.
``v1``
    a full-resolution stem, channels ``w, 1.5w, 2w, 3w``, GroupNorm, a 3x3 head. 2.4 GMAC at
    320x240 with w = 24 (the models made before ``arch`` existed).
"""
from __future__ import annotations

import math

__all__ = ['build_net']


def _blocks(arch: str):
    """Return ``(ConvBlock, Residual)`` with the arch's normalisation."""
    from torch import nn
    import torch.nn.functional as F

    def norm(c):
        return nn.BatchNorm2d(c) if arch == 'v2' else nn.GroupNorm(math.gcd(8, c), c)

    class ConvBlock(nn.Sequential):
        """3x3 convolution, normalisation, ReLU."""

        def __init__(self, ci, co, stride=1, dilation=1):
            super().__init__(nn.Conv2d(ci, co, 3, stride, padding=dilation, dilation=dilation,
                                       bias=False), norm(co), nn.ReLU(inplace=True))

    class Residual(nn.Module):
        """Two 3x3 convolutions (dilated) with a skip connection."""

        def __init__(self, c, dilation=1):
            super().__init__()
            self.a = ConvBlock(c, c, dilation=dilation)
            self.b = nn.Sequential(nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation,
                                             bias=False), norm(c))

        def forward(self, x):
            return F.relu(x + self.b(self.a(x)))

    return ConvBlock, Residual


def build_net(arch: str, cin: int, w: int):
    """Return the torch module of ``arch`` for ``cin`` input channels and width ``w``."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    ConvBlock, Residual = _blocks(arch)  # noqa: N806 - classes

    def context(c):  # 1/8: wide receptive field
        return [Residual(c, 1), Residual(c, 2), Residual(c, 4), Residual(c, 8)]

    def up(x, like):
        return torch.cat([F.interpolate(x, size=like.shape[-2:], mode='nearest'), like], 1)

    class GraspMapNetV1(nn.Module):
        """arch v1: full-resolution stem, GroupNorm, output at the input resolution."""

        def __init__(self):
            super().__init__()
            c1, c2, c3, c4 = w, int(w * 1.5), 2 * w, 3 * w
            self.stem = ConvBlock(cin, c1)                                       # 1/1
            self.down1 = nn.Sequential(ConvBlock(c1, c2, 2), Residual(c2))       # 1/2
            self.down2 = nn.Sequential(ConvBlock(c2, c3, 2), Residual(c3))       # 1/4
            self.down3 = nn.Sequential(ConvBlock(c3, c4, 2), *context(c4))       # 1/8
            self.up2 = ConvBlock(c4 + c3, c3)
            self.up1 = ConvBlock(c3 + c2, c2)
            self.head = nn.Sequential(ConvBlock(c2, c2), nn.Conv2d(c2, 4, 1))

        def forward(self, x):
            s1 = self.down1(self.stem(x))
            s2 = self.down2(s1)
            s3 = self.down3(s2)
            return self.head(self.up1(up(self.up2(up(s3, s2)), s1)))  # raw maps

    class GraspMapNetV2(nn.Module):
        """arch v2: stride-2 stem, BatchNorm, dilated bottleneck, output at half resolution."""

        def __init__(self):
            super().__init__()
            c1, c2, c3 = w, 2 * w, 4 * w
            self.stem = nn.Sequential(ConvBlock(cin, c1, 2), ConvBlock(c1, c1))  # 1/2
            self.down2 = nn.Sequential(ConvBlock(c1, c2, 2), Residual(c2))       # 1/4
            self.down3 = nn.Sequential(ConvBlock(c2, c3, 2), *context(c3))       # 1/8
            self.up2 = ConvBlock(c3 + c2, c2)
            self.up1 = ConvBlock(c2 + c1, c1)
            self.head = nn.Conv2d(c1, 4, 1)

        def forward(self, x):
            s1 = self.stem(x)
            s2 = self.down2(s1)
            s3 = self.down3(s2)
            return self.head(self.up1(up(self.up2(up(s3, s2)), s1)))  # raw maps

    return GraspMapNetV1() if arch == 'v1' else GraspMapNetV2()
