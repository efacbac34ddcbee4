"""Every registered network against its exact counts, and the registry's error messages."""

import pytest

from ran_jax.models import get_model, list_models
from ran_jax.models.complexity import complexity

# (trainable params, BatchNorm running stats, conv+dense MACs per image) at 224 (ImageNet,
# 1000 classes) or 32 (CIFAR, 10 classes). ImageNet rows equal the official deploy files
# (docs/faithfulness.md §4.3); CIFAR rows are the §5.3 design (paper: 92 -> 1.9M,
# 236 -> 5.1M, 452 -> 8.6M).
EXPECTED = {
    "attention56": (31_810_728, 72_704, 6_270_836_736),
    "attention92": (52_466_344, 133_632, 10_533_789_696),
    "attentionnext56": (31_318_824, 98_432, 6_419_106_816),
    "cifar_attention56": (1_030_362, 14_880, 122_825_216),
    "cifar_attention92": (1_841_242, 27_040, 211_913_216),
    "cifar_attention128": (2_652_122, 39_200, 301_001_216),
    "cifar_attention164": (3_463_002, 51_360, 390_089_216),
    "cifar_attention236": (5_084_762, 75_680, 568_265_216),
    "cifar_attention452": (10_181_210, 158_624, 984_386_048),
    "preact_resnet164": (1_703_258, 24_224, 247_646_720),
}


def test_every_paper_network_is_registered():
    assert sorted(EXPECTED) == list_models()


# The two deepest take seconds to trace: the full suite's, not the fast tier's.
DEEPEST = ("cifar_attention236", "cifar_attention452")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] * (n in DEEPEST)) for n in sorted(EXPECTED)]
)
def test_exact_counts(name):
    imagenet = not name.startswith(("cifar", "preact"))
    c = complexity(get_model(name, 1000 if imagenet else 10), 224 if imagenet else 32)
    assert (c.params, c.batch_stats, c.macs) == EXPECTED[name]
    assert c.output_shape == (1, 1000 if imagenet else 10)


def test_running_stats_cover_every_bn_channel():
    # docs/faithfulness.md §4.3: Attention-56 has BatchNorm on 36,352 channels, -92 on 66,816.
    assert EXPECTED["attention56"][1] == 2 * 36_352
    assert EXPECTED["attention92"][1] == 2 * 66_816


def test_trunk_depth_is_36m_plus_20():
    # Trunk-path weighted layers: stem conv, 3 per unit outside modules, 3 * (2p + t) per
    # module, FC (docs/faithfulness.md §4.1, §5.1). Names count only these, not the mask's
    # layers.
    for name, depth in [
        ("attention56", 56),
        ("attention92", 92),
        ("cifar_attention56", 56),
        ("cifar_attention92", 92),
        ("cifar_attention236", 236),
        ("cifar_attention452", 452),
        ("preact_resnet164", 164),
    ]:
        model = get_model(name, 10)
        units = sum(s.units_before + s.units_after for s in model.stages)
        modules = sum(s.num_modules for s in model.stages)
        assert 1 + 3 * units + 3 * (2 * model.p + model.t) * modules + 1 == depth, name


def test_cifar_attention92_is_2_2_2_and_imagenet_is_1_2_3():
    assert [s.num_modules for s in get_model("cifar_attention92", 10).stages] == [2, 2, 2]
    assert [s.num_modules for s in get_model("attention92", 10).stages] == [1, 2, 3, 0]


def test_overrides_select_ablations_and_widths():
    model = get_model(
        "cifar_attention56",
        10,
        attention="naive",
        mask_activation="spatial",
        mask_type="local",
        widths=(4, 8, 16),
        modules=(2, 1, 0),
    )
    assert (model.attention, model.mask_activation, model.mask_type) == (
        "naive",
        "spatial",
        "local",
    )
    assert [(s.width, s.channels, s.num_modules) for s in model.stages] == [
        (4, 16, 2),
        (8, 32, 1),
        (16, 64, 0),
    ]
    next_model = get_model("attentionnext56", 10, widths=(4, 8, 8, 8), cardinality=4)
    assert [s.channels for s in next_model.stages] == [8, 16, 16, 16]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            dict(name="attention57"),
            r"Unknown model 'attention57'; valid choices are: 'attention56'",
        ),
        (
            dict(attention="soft"),
            r"Unknown attention learning 'soft'; valid choices are: 'residual', 'naive'",
        ),
        (
            dict(mask_activation="relu"),
            r"Unknown mask activation 'relu'; valid choices are: 'mixed'",
        ),
        (
            dict(mask_type="global"),
            r"Unknown mask type 'global'; valid choices are: 'soft', 'local'",
        ),
        (dict(depth=3), r"Unknown override 'depth'; valid choices are: .*'attention'"),
        (dict(widths=(4, 8)), r"widths needs one value per stage \(3\)"),
        (dict(num_classes=0), r"num_classes must be positive, got 0"),
    ],
)
def test_bad_arguments_name_the_value_and_the_choices(kwargs, message):
    kwargs = {"name": "cifar_attention56", "num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        get_model(**kwargs)


def test_resnext_width_must_divide_by_cardinality():
    with pytest.raises(ValueError, match="not divisible by cardinality 32"):
        get_model("attentionnext56", 10, widths=(8, 8, 8, 8))
