#!/usr/bin/python3
"""PyTorch timing of the ResNet20 conv shapes (forward, backward-input, backward-weight), to
compare with benchmarks/conv_bench.cpp. Usage: conv_bench_torch.py [--threads 2] [--reps 10]"""
import argparse
import time

import torch

SHAPES = [  # name, C, H, K, R, stride, pad
    ("conv1 3->16 32x32", 3, 32, 16, 3, 1, 1),
    ("16->16 32x32", 16, 32, 16, 3, 1, 1),
    ("16->32 s2 32x32", 16, 32, 32, 3, 2, 1),
    ("32->32 16x16", 32, 16, 32, 3, 1, 1),
    ("32->64 s2 16x16", 32, 16, 64, 3, 2, 1),
    ("64->64 8x8", 64, 8, 64, 3, 1, 1),
    ("ds 16->32 1x1 s2", 16, 32, 32, 1, 2, 0),
    ("ds 32->64 1x1 s2", 32, 16, 64, 1, 2, 0),
]


CLOCK = time.perf_counter


def best_ms(f, reps):
    """Minimum over repetitions: the least disturbed run on a shared machine."""
    f()
    best = float("inf")
    for _ in range(reps):
        t0 = CLOCK()
        f()
        best = min(best, (CLOCK() - t0) * 1e3)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: process CPU time (ignores time descheduled by other load)")
    a = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if a.clock == "cpu" else time.perf_counter
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__} conv (f32, batch {a.batch}, {a.threads} threads), "
          f"best of {a.reps}, {a.clock} ms")
    print(f"{'shape':20s} {'fwd':>9s} {'bwd_in':>9s} {'bwd_w':>9s} {'total':>9s} {'GFLOP/s':>8s}")
    total_sum = 0.0
    g = torch.Generator().manual_seed(0)
    for name, c, h, k, r, s, p in SHAPES:
        x = torch.randn(a.batch, c, h, h, generator=g)
        w = torch.randn(k, c, r, r, generator=g)
        y = torch.nn.functional.conv2d(x, w, stride=s, padding=p)
        gy = torch.randn(y.shape, generator=g)
        o = y.shape[2]
        with torch.no_grad():
            fwd = best_ms(lambda: torch.nn.functional.conv2d(x, w, stride=s, padding=p), a.reps)
        # The two backward halves, as autograd calls them (aten convolution_backward).
        bwd = torch.ops.aten.convolution_backward
        args = (gy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1)
        bi = best_ms(lambda: bwd(*args, [True, False, False]), a.reps)
        bw = best_ms(lambda: bwd(*args, [False, True, False]), a.reps)
        flop = 2.0 * a.batch * k * o * o * c * r * r
        tot = fwd + bi + bw
        total_sum += tot
        print(f"{name:20s} {fwd:9.2f} {bi:9.2f} {bw:9.2f} {tot:9.2f} {3 * flop / (tot * 1e6):8.1f}")
    print(f"sum over shapes: {total_sum:.2f} ms")


if __name__ == "__main__":
    main()
