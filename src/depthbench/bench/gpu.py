"""GPU throughput: a ResNet's training images per second with bf16 autocast and channels-last.

Runs only where CUDA is available; elsewhere it records that nothing was measured. The model is
torchvision's ResNet-50 (He et al. 2016) on synthetic 224x224 images already on the GPU (the
input pipeline is out of the picture), SGD with momentum, ``torch.autocast(bfloat16)`` and
``channels_last`` memory format, the usual recipe for tensor-core convolutions. The median
seconds per step over ``--steps`` timed steps (after warm-up) gives images/s; fp32 is measured
in the same run for the ratio. The framework-overhead ratio on the GPU is
``python -m depthbench.bench overhead --device cuda``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F

from depthbench.bench.common import median, save_section


def resnet_images_per_second(
    arch: str, batch: int, steps: int, warmup: int, bf16: bool, channels_last: bool
) -> dict[str, Any]:
    """Median training images/s of ``torchvision.models.<arch>`` on synthetic data."""
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(num_classes=1000).cuda()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    times = []
    for i in range(warmup + steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step = median(times)
    return {"arch": arch, "batch": batch, "bf16": bf16, "channels_last": channels_last,
            "step_ms": step * 1e3, "images_per_second": batch / step}  # fmt: skip


def run(arch: str, batch: int, steps: int) -> dict[str, Any]:
    """bf16 + channels-last, and fp32 for comparison."""
    if not torch.cuda.is_available():
        return {"measured": False, "reason": "no CUDA device on this machine"}
    torch.backends.cudnn.benchmark = True
    fast = resnet_images_per_second(arch, batch, steps, 10, bf16=True, channels_last=True)
    fp32 = resnet_images_per_second(arch, batch, steps, 10, bf16=False, channels_last=False)
    return {
        "measured": True,
        "gpu": torch.cuda.get_device_name(0),
        "bf16_channels_last": fast,
        "fp32": fp32,
        "speedup": fast["images_per_second"] / fp32["images_per_second"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m depthbench.bench gpu``"""
    p = argparse.ArgumentParser(prog="depthbench.bench gpu", description=__doc__)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--no-save", action="store_true")
    a = p.parse_args(argv)
    result = run(a.arch, a.batch, a.steps)
    if result["measured"]:
        print(f"gpu {a.arch}: {result['bf16_channels_last']['images_per_second']:.0f} images/s "
              f"(bf16, channels-last), {result['speedup']:.2f}x fp32")  # fmt: skip
    else:
        print(f"gpu: not measured ({result['reason']})")
    if not a.no_save:
        save_section("gpu", result)
    return result
