"""Layer shapes of the nets mocha-triton targets, shared by the benchmarks.

Each conv entry: (name, C, H, W, F, (KH, KW), stride, pad, groups) for a batch chosen by the caller.
Each inner-product entry: (name, K, O). Each pooling entry: (name, C, H, W, kernel, stride, pad, mode).
"""

from __future__ import annotations

LENET_CONV = [
    ("lenet.conv1", 1, 28, 28, 20, (5, 5), 1, 0, 1),
    ("lenet.conv2", 20, 12, 12, 50, (5, 5), 1, 0, 1),
]
CIFAR_QUICK_CONV = [
    ("cifar.conv1", 3, 32, 32, 32, (5, 5), 1, 2, 1),
    ("cifar.conv2", 32, 16, 16, 32, (5, 5), 1, 2, 1),
    ("cifar.conv3", 32, 8, 8, 64, (5, 5), 1, 2, 1),
]
ALEXNET_CONV = [
    ("alexnet.conv2", 96, 27, 27, 256, (5, 5), 1, 2, 2),
    ("alexnet.conv3", 256, 13, 13, 384, (3, 3), 1, 1, 1),
    ("alexnet.conv4", 384, 13, 13, 384, (3, 3), 1, 1, 2),
    ("alexnet.conv5", 384, 13, 13, 256, (3, 3), 1, 1, 2),
]
VGG_CONV3 = [
    ("vgg16.conv3_1", 128, 56, 56, 256, (3, 3), 1, 1, 1),
    ("vgg16.conv3_2", 256, 56, 56, 256, (3, 3), 1, 1, 1),
]

LENET_IP = [("lenet.ip1", 800, 500), ("lenet.ip2", 500, 10)]
CIFAR_QUICK_IP = [("cifar.ip1", 1024, 64), ("cifar.ip2", 64, 10)]
ALEXNET_IP = [("alexnet.fc6", 9216, 4096), ("alexnet.fc7", 4096, 4096), ("alexnet.fc8", 4096, 1000)]

LENET_POOL = [
    ("lenet.pool1", 20, 24, 24, (2, 2), (2, 2), (0, 0), "max"),
    ("lenet.pool2", 50, 8, 8, (2, 2), (2, 2), (0, 0), "max"),
]
CIFAR_QUICK_POOL = [
    ("cifar.pool1", 32, 32, 32, (3, 3), (2, 2), (0, 0), "max"),
    ("cifar.pool2", 32, 16, 16, (3, 3), (2, 2), (0, 0), "mean"),
    ("cifar.pool3", 64, 8, 8, (3, 3), (2, 2), (0, 0), "mean"),
]
ALEXNET_POOL = [
    ("alexnet.pool1", 96, 55, 55, (3, 3), (2, 2), (0, 0), "max"),
    ("alexnet.pool5", 256, 13, 13, (3, 3), (2, 2), (0, 0), "max"),
]
