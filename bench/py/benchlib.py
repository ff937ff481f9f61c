"""The Python side of mproc's benchmarks: the same options, statistics and result line as bench.h.

A bench/py/<area>.py script measures CPython's equivalent of what bench/<area>.c measures and
prints, per result (DESIGN.md section 6):

  name=<area>.<variant> impl=python value=<median> unit=<unit> min=<v> max=<v> reps=<R>

Use it like this:

    import benchlib
    b = benchlib.Bench()                       # parses --smoke, --reps N, --filter S
    def run(iters):                            # runs the operation iters times
        f = time.monotonic_ns
        for _ in range(iters):
            f()
    b.run("core.clock.monotonic", "ns/op", run, iters=1_000_000)

bench/run.sh starts these scripts with the real interpreter (not a pyenv shim) and sets
MPROC_BENCH_BIN to the directory of the built bench binaries and mproc_helper (see sibling()).
"""

import argparse
import os
import statistics
import sys
import time

UNITS = ("ns/op", "us/op", "ops/s", "GB/s", "MB/s")


class Bench:
    def __init__(self, argv=None):
        p = argparse.ArgumentParser(description="mproc benchmark, Python side")
        p.add_argument("--smoke", action="store_true", help="tiny counts: prove it runs")
        p.add_argument("--reps", type=int, default=0, help="repetitions per result")
        p.add_argument("--filter", default=None, help="only results whose name contains this")
        a = p.parse_args(argv)
        self.smoke = a.smoke
        self.reps = a.reps
        self.filter = a.filter
        self.failed = False

    def wanted(self, name):
        return self.filter is None or self.filter in name

    def report(self, name, unit, values, impl="python"):
        """Print the result line for per-repetition values already in unit."""
        if not values:
            raise ValueError("no values")
        print("name=%s impl=%s value=%.6g unit=%s min=%.6g max=%.6g reps=%d"
              % (name, impl, statistics.median(values), unit, min(values), max(values), len(values)),
              flush=True)

    def run(self, name, unit, fn, iters, smoke_iters=0, reps=0, bytes_per_op=0.0):
        """Warm up with fn(iters // 10 + 1), then time fn(iters) reps times and report."""
        if not self.wanted(name):
            return
        if unit not in UNITS:
            raise ValueError("unknown unit %r" % unit)
        reps = self.reps or reps or 7
        if self.smoke:
            iters = smoke_iters or max(1, iters // 1000)
            reps = 2
        fn(iters // 10 + 1)
        values = []
        for _ in range(reps):
            t0 = time.perf_counter_ns()
            fn(iters)
            ns = max(time.perf_counter_ns() - t0, 1)
            values.append(convert(unit, iters, ns, bytes_per_op))
        self.report(name, unit, values)


def convert(unit, iters, ns, bytes_per_op=0.0):
    secs = ns / 1e9
    if unit == "ns/op":
        return ns / iters
    if unit == "us/op":
        return ns / iters / 1e3
    if unit == "ops/s":
        return iters / secs
    if unit == "GB/s":
        return bytes_per_op * iters / secs / 1e9
    if unit == "MB/s":
        return bytes_per_op * iters / secs / 1e6
    raise ValueError("unknown unit %r" % unit)


# ---- CPU placement for two-process benchmarks: the same scheme as bench.h ----------------------
_initial = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def placement_name(cross):
    return "cross-cpu" if cross else "same-cpu"


def cpus():
    return len(_initial) if _initial is not None else (os.cpu_count() or 1)


def pin_side(cross, side):
    """Pin this process: side 0 = parent, 1 = child; same-cpu puts both on the first CPU, cross-cpu
    the child on the second. Returns False if impossible here (then skip the variant)."""
    if _initial is None or (cross and cpus() < 2):
        return False
    order = sorted(_initial)
    os.sched_setaffinity(0, {order[1] if cross and side == 1 else order[0]})
    return True


def unpin():
    if _initial is not None:
        os.sched_setaffinity(0, _initial)


def sibling(program):
    """Path of a program built beside the bench binaries (e.g. "mproc_helper")."""
    d = os.environ.get("MPROC_BENCH_BIN")
    if not d:
        sys.exit("benchlib: MPROC_BENCH_BIN is not set (run through bench/run.sh)")
    return os.path.join(d, program)
