#!/usr/bin/env python3
# Shipped by the tfs-fleet nvidia_driver role (ansible.builtin.script); standard library only.
"""A real CUDA call on every GPU: cuInit, then a context on each device, through the driver's
libcuda.so.1. nvidia-smi answers on an HGX board without Fabric Manager; CUDA does not
(cuInit returns 802, CUDA_ERROR_SYSTEM_NOT_READY). Prints one JSON object; exit 1 on failure."""

from __future__ import annotations

import ctypes
import json
import sys

HINTS = {
    3: "CUDA_ERROR_NOT_INITIALIZED",
    100: "CUDA_ERROR_NO_DEVICE: no GPU visible to CUDA (kernel module not loaded?)",
    101: "CUDA_ERROR_INVALID_DEVICE",
    304: "CUDA_ERROR_OPERATING_SYSTEM",
    802: (
        "CUDA_ERROR_SYSTEM_NOT_READY: on an NVSwitch (HGX/DGX) board, nvidia-fabricmanager "
        "is not running or not at the driver's version (journalctl -u nvidia-fabricmanager)"
    ),
    803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: libcuda and the kernel module differ (reboot?)",
    999: "CUDA_ERROR_UNKNOWN",
}


def main() -> int:
    result: dict[str, object] = {"ok": False}
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        result["error"] = f"libcuda.so.1 not found: {exc}"
        print(json.dumps(result))
        return 1
    rc = cuda.cuInit(0)
    if rc != 0:
        result.update(error=f"cuInit returned {rc}", hint=HINTS.get(rc, ""))
        print(json.dumps(result))
        return 1
    count = ctypes.c_int(0)
    rc = cuda.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0:
        result.update(error=f"cuDeviceGetCount returned {rc}", hint=HINTS.get(rc, ""))
        print(json.dumps(result))
        return 1
    failed = []
    for index in range(count.value):
        device = ctypes.c_int(0)
        context = ctypes.c_void_p()
        rc = cuda.cuDeviceGet(ctypes.byref(device), index)
        if rc == 0:
            rc = cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device)
        if rc == 0:
            cuda.cuDevicePrimaryCtxRelease(device)
        else:
            failed.append({"index": index, "rc": rc, "hint": HINTS.get(rc, "")})
    result.update(ok=not failed and count.value > 0, devices=count.value, failed=failed)
    if count.value == 0:
        result["error"] = "CUDA sees no device"
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
