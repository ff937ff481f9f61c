"""Benchmark area "subprocess", Python side (see bench/subprocess.c)."""
import subprocess

import benchlib


def spawn_true(iters):
    for _ in range(iters):
        subprocess.run(["/bin/true"])


def main():
    b = benchlib.Bench()
    b.run("subprocess.spawn.true", "us/op", spawn_true, iters=300, smoke_iters=3)

    helper = benchlib.sibling("mproc_helper")
    pinexec = benchlib.sibling("bench_pinexec")
    each = (1 << 20) if b.smoke else (200 << 20)
    benchlib.print_cpu_map()
    for cross in (False, True):
        # two processes: the parent pins itself, the child is pinned by bench_pinexec (as in C)
        name = b.pair_begin("subprocess.capture.both200m", cross)
        if name is None:
            continue
        cpu = benchlib.side_cpu(cross, 1)
        argv = [pinexec, str(cpu), helper, "out", str(each), "err", str(each)]

        def capture(iters, argv=argv):
            for _ in range(iters):
                r = subprocess.run(argv, capture_output=True)
                assert len(r.stdout) == each and len(r.stderr) == each

        b.run(name, "MB/s", capture, iters=1, smoke_iters=1, reps=5, bytes_per_op=2.0 * each)
    benchlib.unpin()

    if b.wanted("subprocess.spawn.true.rss1g"):
        big = bytearray(b"\x01") * ((64 << 20) if b.smoke else (1 << 30))  # touched, not calloc'ed
        b.run("subprocess.spawn.true.rss1g", "us/op", spawn_true, iters=300, smoke_iters=3)
        del big


if __name__ == "__main__":
    main()
