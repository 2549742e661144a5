"""AdaptSegNet's fully convolutional discriminator (Tsai et al., CVPR 2018) for output-space adaptation."""
from __future__ import annotations

import torch
from torch import nn


class FCDiscriminator(nn.Module):
    """Five 4x4 stride-2 convolutions (classes -> ndf -> 2ndf -> 4ndf -> 8ndf -> 1), LeakyReLU(0.2) between.

    Takes a softmax map (N, num_classes, H, W) and returns one domain logit per patch, (N, 1, ~H/32, ~W/32);
    no sigmoid, for ``BCEWithLogitsLoss``.

    Args:
        num_classes: channels of the segmentation output it judges.
        ndf: width of the first layer.
    """

    def __init__(self, num_classes: int = 19, ndf: int = 64) -> None:
        super().__init__()
        widths = [num_classes, ndf, ndf * 2, ndf * 4, ndf * 8]
        self.conv1, self.conv2, self.conv3, self.conv4 = (
            nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1) for c_in, c_out in zip(widths, widths[1:]))
        self.classifier = nn.Conv2d(ndf * 8, 1, kernel_size=4, stride=2, padding=1)
        self.leaky_relu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.leaky_relu(conv(x))
        return self.classifier(x)
