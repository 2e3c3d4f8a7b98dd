"""What every bench records about where it ran, so GPU and CPU figures are never read without it."""
from __future__ import annotations

import os
import platform


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's with the cores this process may use."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {len(os.sched_getaffinity(0))} cores"


def machine() -> dict:
    """Platform, CPUs and load: on a shared machine the wall time also counts other programs' work."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 2)}
