"""Benchmark area "core", Python side (see bench/core.c)."""
import os
import time

import benchlib


def clock_monotonic(iters):
    f = time.monotonic_ns
    for _ in range(iters):
        f()


def getpid(iters):
    f = os.getpid
    for _ in range(iters):
        f()


def main():
    b = benchlib.Bench()
    b.run("core.clock.monotonic", "ns/op", clock_monotonic, iters=1_000_000)
    b.run("core.getpid", "ns/op", getpid, iters=1_000_000)


if __name__ == "__main__":
    main()
