"""Attention-56 on Tiny ImageNet-200 (64x64 photos, 200 classes): the CIFAR-style network.

Choice of network, from ``python -m ran_jax.summary --model=M --image_size=64
--num_classes=200``:

| model | after the stem | last stage | params | MACs / image |
|---|---|---|---|---|
| ``cifar_attention56`` (chosen) | 64x64x16 | 16x16x256 | 1,079,192 | 0.491 G |
| ``attention56`` (ImageNet stem) | 16x16x64 | 2x2x2048 | 30,171,528 | 0.512 G |

The ImageNet network's 7x7 stride-2 convolution and max pooling shrink 64x64 inputs 4x before
the first attention module, so its soft masks work on 16x16, 8x8 and 4x4 maps (one or two
down-and-up samplings of a 4x4 map leave little to attend to) and its last stage sees 2x2. The
CIFAR-style stem (one 3x3 convolution, stride 1) keeps 64x64, so the three attention stages
work on 64x64, 32x32 and 16x16 maps, as the paper's ImageNet network does on 56, 28 and 14
after its stem at 224. For about the same MACs it has 28x fewer parameters, which suits
100,000 training images (500 per class) better than 30 M.

Recipe: the paper's CIFAR recipe (``configs.cifar``; docs/faithfulness.md §7.1), about 102
epochs of Tiny ImageNet; zero-pad 4, random 64x64 crop and flip; Tiny ImageNet's mean/std.
The data: put ``tiny-imagenet-200.zip`` in ``<data_dir>/downloads/manual/`` (``docs/data.md``).
"""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention56", dataset="tiny_imagenet")
    c.image_size = 64
    return c
