"""Pick the device (cuda > mps > cpu) and the dtype policy; report name and memory."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UserInputError
from .lazy import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "cuda" | "mps" | "cpu"
    name: str  # human name, e.g. "NVIDIA H100 80GB HBM3" or "CPU (2 threads)"
    dtype: torch.dtype  # the dtype models load in on this device
    total_bytes: int
    free_bytes: int

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.kind)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def describe(self) -> str:
        gib = 1024**3
        return (f"{self.kind} · {self.name} · {self.dtype_name} · "
                f"{self.free_bytes / gib:.1f} of {self.total_bytes / gib:.1f} GiB free")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_kinds() -> list[str]:
    kinds = []
    if torch.cuda.is_available():
        kinds.append("cuda")
    if _mps_available():
        kinds.append("mps")
    kinds.append("cpu")
    return kinds


def dtype_for(kind: str) -> torch.dtype:
    """fp32 on the CPU; bf16 on a GPU that supports it, else fp16."""
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind == "mps":
        return torch.float16
    return torch.float32


def host_memory() -> tuple[int, int]:
    """(total, available) bytes of RAM."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except Exception:  # psutil missing: fall back to /proc/meminfo
        info = {}
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, val = line.split(":", 1)
                info[key] = int(val.split()[0]) * 1024
        return info.get("MemTotal", 0), info.get("MemAvailable", 0)


def pick_device(preference: str = "auto") -> DeviceInfo:
    if preference not in DEVICE_CHOICES:
        raise UserInputError(f"device = {preference!r} is not valid: choose one of {', '.join(DEVICE_CHOICES)}.")
    kinds = available_kinds()
    if preference == "auto":
        kind = kinds[0]
    elif preference in kinds:
        kind = preference
    else:
        raise UserInputError(
            f"device = {preference!r} is not available on this machine: available are {', '.join(kinds)}."
        )
    if kind == "cuda":
        props = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info(0)
        return DeviceInfo("cuda", props.name, dtype_for("cuda"), int(total), int(free))
    total, free = host_memory()
    if kind == "mps":
        return DeviceInfo("mps", "Apple GPU (MPS)", dtype_for("mps"), total, free)
    return DeviceInfo("cpu", f"CPU ({torch.get_num_threads()} threads)", torch.float32, total, free)


def free_bytes(info: DeviceInfo) -> int:
    """Memory free now on the device the models live on."""
    if info.kind == "cuda":
        return int(torch.cuda.mem_get_info(0)[0])
    return host_memory()[1]
