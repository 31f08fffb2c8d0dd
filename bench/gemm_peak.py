#!/usr/bin/python3
"""What a 2048 x 2048 float32 matrix product reaches on one thread of this
machine, GFLOP/s: OpenBLAS with the kernels OPENBLAS_CORETYPE selects
(through numpy, which uses Debian's OpenBLAS), and torch.mm (its bundled
oneDNN, when python3-torch is installed). docs/benchmarks.md quotes it for
the rows whose products run near the kernels' peak.

  OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/gemm_peak.py
  OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/gemm_peak.py
"""

import os
import platform
import time

N, REPEATS = 2048, 10


def rate(product):
    for _ in range(2):
        product()
    start = time.perf_counter()
    for _ in range(REPEATS):
        product()
    return 2 * N ** 3 * REPEATS / (time.perf_counter() - start) / 1e9


def main():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"cpu: {cpu}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}")
    import numpy as np
    a = np.random.rand(N, N).astype(np.float32)
    b = np.random.rand(N, N).astype(np.float32)
    print(f"OpenBLAS sgemm (numpy), 1 thread: {rate(lambda: a @ b):.0f} GFLOP/s")
    try:
        import torch
    except ImportError:
        print("torch.mm: skipped (no python3-torch)")
        return
    torch.set_num_threads(1)
    x, y = torch.randn(N, N), torch.randn(N, N)
    print(f"torch.mm, 1 thread: {rate(lambda: x @ y):.0f} GFLOP/s")


if __name__ == "__main__":
    main()
