"""PyTorch Conv1d/Conv2d/LayerNorm/BatchNorm <-> rnnfast layers (skipped without
torch): the converted layer predicts what the module predicts, and back."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import rnnfast  # noqa: E402
from rnnfast import interop  # noqa: E402
from rnnfast.interop import ConversionError  # noqa: E402

CASES = [
    (lambda: torch.nn.Conv1d(4, 6, 3, stride=2, groups=2), (2, 4, 11)),
    (lambda: torch.nn.Conv1d(4, 6, 3, padding="same", dilation=2), (2, 4, 11)),
    (lambda: torch.nn.Conv1d(4, 6, 5, padding=2, bias=False), (2, 4, 11)),
    (lambda: torch.nn.Conv2d(3, 5, (3, 2), stride=(1, 2)), (2, 3, 7, 8)),
    (lambda: torch.nn.Conv2d(4, 4, 3, padding=1, groups=4), (2, 4, 6, 6)),
    (lambda: torch.nn.LayerNorm(6), (2, 5, 6)),
    (lambda: torch.nn.LayerNorm((5, 6), elementwise_affine=False), (2, 5, 6)),
    (lambda: torch.nn.BatchNorm1d(4), (8, 4, 5)),
    (lambda: torch.nn.BatchNorm1d(4, affine=False), (8, 4)),
    (lambda: torch.nn.BatchNorm2d(3), (4, 3, 5, 5)),
]


def _trained(module, shape):
    """Non-trivial weights and running statistics."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    if "BatchNorm" in type(module).__name__:
        module.train()
        for _ in range(3):
            module(torch.randn(*shape) * 2 + 1)
    return module.eval()


@pytest.mark.parametrize("make,shape", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_module_to_layer_and_back(make, shape, dtype):
    module = _trained(make(), shape)
    if dtype == "float64":
        module = module.double()
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    # A LayerNorm without weights has no dtype of its own: say which.
    layer = interop.from_torch(module, dtype=None if module.state_dict() else dtype)
    assert layer.compute_dtype == np.dtype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(layer(x), ref, rtol=tol, atol=tol)
    back = interop.to_torch(layer).eval()
    with torch.no_grad():
        np.testing.assert_array_equal(back(torch.from_numpy(x)).numpy(), ref)
    state = interop.torch_state_dict(layer)
    for key, value in module.state_dict().items():
        if key != "num_batches_tracked":
            np.testing.assert_array_equal(state[key], value.numpy(), err_msg=key)


def test_channels_last_conversion_and_state_dict_loading():
    conv = _trained(torch.nn.Conv2d(3, 4, 3, padding="same"), None)
    x = np.random.default_rng(2).standard_normal((2, 6, 7, 3)).astype("float32")
    layer = interop.from_torch_layer(conv, data_format="channels_last")
    with torch.no_grad():
        ref = conv(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(layer(x), ref, rtol=1e-5, atol=1e-5)
    # A state dict alone, with a larger model's prefix, into a layer built by hand.
    fresh = rnnfast.layers.Conv2D(4, 3, padding="same")
    fresh.build((None, 6, 7, 3))
    interop.load_torch_state_dict(fresh, {"net.conv." + k: v for k, v in conv.state_dict().items()},
                                  prefix="net.conv.")
    np.testing.assert_allclose(fresh(x), ref, rtol=1e-5, atol=1e-5)


def test_errors_name_the_problem():
    with pytest.raises(ConversionError, match="padding_mode"):
        interop.from_torch(torch.nn.Conv1d(2, 2, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ConversionError, match="ZeroPadding"):
        interop.from_torch(torch.nn.Conv1d(2, 2, 3, padding=2))
    with pytest.raises(ConversionError, match="track_running_stats"):
        interop.from_torch(torch.nn.BatchNorm1d(3, track_running_stats=False))
    layer = rnnfast.layers.Conv1D(2, 3, padding="causal")
    layer.build((None, 5, 2))
    with pytest.raises(ConversionError, match="causal"):
        interop.to_torch(layer)
    bad = rnnfast.layers.Conv1D(2, 3)
    bad.build((None, 5, 2))
    before = bad.kernel.numpy()
    with pytest.raises(ConversionError, match="shape"):
        interop.load_torch_state_dict(bad, {"weight": np.zeros((2, 2, 4), "float32"),
                                            "bias": np.zeros(2, "float32")})
    with pytest.raises(ConversionError, match="no 'bias'"):
        interop.load_torch_state_dict(bad, {"weight": np.zeros((2, 2, 3), "float32")})
    np.testing.assert_array_equal(bad.kernel.numpy(), before)  # nothing half-written
