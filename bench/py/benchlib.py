"""The Python side of mproc's benchmarks: the same options, statistics and result line as bench.h.

A bench/py/<area>.py script measures CPython's equivalent of what bench/<area>.c measures and
prints, per result (DESIGN.md section 6):

  name=<area>.<variant> impl=python value=<median> unit=<unit> [op=<noun>] min=<v> max=<v> reps=<R>

(op names what an ops/s rate counts: task, item, line; required with ops/s). Each script prints the
interpreter's path and version in a "# python:" line, and scripts with two-process results the CPU
map ("# cpu map:", print_cpu_map()).

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
import platform
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
        print("# python: %s %s %s" % (sys.executable, platform.python_implementation(),
                                      platform.python_version()), flush=True)

    def wanted(self, name):
        return self.filter is None or self.filter in name

    def pair_begin(self, prefix, cross):
        """The start of a two-process line: its name, "<prefix>.<placement>", with this process pinned as
        the parent (side 0) if it is to run; None if --filter leaves it out or it cannot be placed here
        (then it prints "# <name>: skipped, needs two CPUs")."""
        name = "%s.%s" % (prefix, placement_name(cross))
        if not self.wanted(name):
            return None
        if side_cpu(cross, 1) is None or not pin_side(cross, 0):
            print("# %s: skipped, needs two CPUs" % name, flush=True)
            return None
        return name

    def report(self, name, unit, values, impl="python", op=None):
        """Print the result line for per-repetition values already in unit."""
        if not values:
            raise ValueError("no values")
        check_op(unit, op)
        print("name=%s impl=%s value=%.6g unit=%s%s min=%.6g max=%.6g reps=%d"
              % (name, impl, statistics.median(values), unit, " op=" + op if op else "", min(values),
                 max(values), len(values)),
              flush=True)

    def run(self, name, unit, fn, iters, smoke_iters=0, reps=0, bytes_per_op=0.0, op=None):
        """Warm up with fn(iters // 10 + 1), then time fn(iters) reps times and report."""
        if not self.wanted(name):
            return
        if unit not in UNITS:
            raise ValueError("unknown unit %r" % unit)
        check_op(unit, op)
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
        self.report(name, unit, values, op=op)


def check_op(unit, op):
    """ops/s names its operation (one word); other units may."""
    if unit == "ops/s" and not op:
        raise ValueError("ops/s needs op= (the operation counted: task, item, line)")
    if op and (any(c.isspace() for c in op) or "=" in op):
        raise ValueError("op must be one word: %r" % op)


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


def side_cpu(cross, side):
    """The CPU side (0 = parent, 1 = child) runs on: same-cpu puts both on the first CPU of the
    initial mask, cross-cpu the child on the second. None if impossible here. Pass the number to a
    child that may not share this module's state (a forkserver child, whose server was pinned)."""
    if _initial is None or (cross and cpus() < 2):
        return None
    order = sorted(_initial)
    return order[1] if cross and side == 1 else order[0]


def pin_cpu(cpu):
    """Pin this process to one CPU: one sched_setaffinity call."""
    os.sched_setaffinity(0, {cpu})


def pin_side(cross, side):
    """Pin this process as side (0 = parent, 1 = child) of a placement. Returns False if impossible
    here (then skip the variant)."""
    cpu = side_cpu(cross, side)
    if cpu is None:
        return False
    pin_cpu(cpu)
    return True


def print_cpu_map():
    """The "# cpu map:" line, the same as bench_print_cpu_map() in bench.c."""
    parts = []
    for cross in (False, True):
        parent, child = side_cpu(cross, 0), side_cpu(cross, 1)
        if parent is None or child is None:
            parts.append(" %s: impossible (%d CPU);" % (placement_name(cross), cpus()))
        else:
            parts.append(" %s: parent CPU %d, child CPU %d;" % (placement_name(cross), parent, child))
    print("# cpu map:%s a fork server runs on the parent's CPU; every child pins itself with one call"
          % "".join(parts), flush=True)


def unpin():
    if _initial is not None:
        os.sched_setaffinity(0, _initial)


def sibling(program):
    """Path of a program built beside the bench binaries (e.g. "mproc_helper")."""
    d = os.environ.get("MPROC_BENCH_BIN")
    if not d:
        sys.exit("benchlib: MPROC_BENCH_BIN is not set (run through bench/run.sh)")
    return os.path.join(d, program)


def conn_echo(conn):
    """Echo every message of a multiprocessing Connection back, until an empty one or end of file."""
    buf = bytearray(8)
    try:
        while True:  # an empty message ends it (a fork child holds the parent's end too)
            n = conn.recv_bytes_into(buf)
            if n == 0:
                break
            conn.send_bytes(buf, 0, n)
    except EOFError:
        pass


def conn_pingpong(conn):
    """A run(iters) of 1-byte round trips on a Connection whose peer runs conn_echo."""
    small = bytearray(8)

    def run(n):
        for _ in range(n):
            conn.send_bytes(b"x")
            conn.recv_bytes_into(small)
    return run
