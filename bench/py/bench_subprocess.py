"""Benchmark area "subprocess", Python side (see bench/subprocess.c)."""
import subprocess
import time

import benchlib


def spawn_true(iters):
    for _ in range(iters):
        subprocess.run(["/bin/true"])


def lines_once(argv, n):
    """`for line in p.stdout` over bench_linewriter's output, timed from the go (as in C): lines/s."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    t0 = time.perf_counter_ns()
    p.stdin.write(b"g")
    p.stdin.flush()
    got = 0
    for _ in p.stdout:
        got += 1
    t1 = time.perf_counter_ns()
    p.stdin.close()
    assert p.wait() == 0 and got == n, (got, n)
    return got / ((t1 - t0) / 1e9)


def lines(b, variant, n, batch):
    """subprocess.lines.<variant>.<placement> (see bench/subprocess.c): self-timed from the go."""
    writer = benchlib.sibling("bench_linewriter")
    n = 1024 if b.smoke else n
    for cross in (False, True):
        name = b.pair_begin("subprocess.lines." + variant, cross)  # the parent pins itself
        if name is None:
            continue
        argv = [writer, str(benchlib.side_cpu(cross, 1)), str(n), "64", str(batch)]
        reps = 2 if b.smoke else (b.reps or 7)
        lines_once(argv, n)  # warm-up
        b.report(name, "ops/s", [lines_once(argv, n) for _ in range(reps)], op="line")


def main():
    b = benchlib.Bench()
    b.run("subprocess.spawn.true", "us/op", spawn_true, iters=300, smoke_iters=3)

    helper = benchlib.sibling("mproc_helper")
    pinexec = benchlib.sibling("bench_pinexec")
    benchlib.print_cpu_map()
    # both200m: 200 MiB on each stream (a rate); small: 4 KiB on each (a start and its capture)
    for base, unit, each, iters in (("subprocess.capture.both200m", "MB/s", (1 << 20) if b.smoke else (200 << 20), 1),
                                    ("subprocess.capture.small", "us/op", 4096, 200)):
        for cross in (False, True):
            # two processes: the parent pins itself, the child is pinned by bench_pinexec (as in C)
            name = b.pair_begin(base, cross)
            if name is None:
                continue
            cpu = benchlib.side_cpu(cross, 1)
            argv = [pinexec, str(cpu), helper, "out", str(each), "err", str(each)]

            def capture(n, argv=argv, each=each):
                for _ in range(n):
                    r = subprocess.run(argv, capture_output=True)
                    assert len(r.stdout) == each and len(r.stderr) == each

            if iters == 1:
                b.run(name, unit, capture, iters=1, smoke_iters=1, reps=5, bytes_per_op=2.0 * each)
            else:
                b.run(name, unit, capture, iters=iters, smoke_iters=3)
    lines(b, "100k", 100000, 1)
    lines(b, "1m.batched", 1000000, 1024)
    benchlib.unpin()

    if b.wanted("subprocess.spawn.true.rss1g"):
        big = bytearray(b"\x01") * ((64 << 20) if b.smoke else (1 << 30))  # touched, not calloc'ed
        b.run("subprocess.spawn.true.rss1g", "us/op", spawn_true, iters=300, smoke_iters=3)
        del big


if __name__ == "__main__":
    main()
