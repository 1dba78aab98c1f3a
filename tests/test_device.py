import pytest
import torch

from engine.core import device as dev
from engine.core.errors import UserInputError


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(dev, "available_kinds", lambda: ["mps", "cpu"])
    assert dev.pick_device("auto").kind == "mps"
    monkeypatch.setattr(dev, "available_kinds", lambda: ["cpu"])
    info = dev.pick_device("auto")
    assert info.kind == "cpu" and info.dtype == torch.float32
    assert info.total_bytes > 0 and 0 < info.free_bytes <= info.total_bytes


def test_real_order_of_available_kinds():
    kinds = dev.available_kinds()
    assert kinds[-1] == "cpu"
    assert kinds == sorted(kinds, key=["cuda", "mps", "cpu"].index)


def test_dtype_policy():
    assert dev.dtype_for("cpu") == torch.float32
    assert dev.dtype_for("mps") == torch.float16


def test_unavailable_or_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(dev, "available_kinds", lambda: ["cpu"])
    with pytest.raises(UserInputError, match="available are cpu"):
        dev.pick_device("cuda")
    with pytest.raises(UserInputError, match="choose one of"):
        dev.pick_device("tpu")


def test_describe_names_device_dtype_and_memory():
    text = dev.pick_device("cpu").describe()
    assert "cpu" in text and "float32" in text and "GiB" in text
