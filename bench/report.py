#!/usr/bin/env python3
"""Read benchmark result lines on stdin and print the ratio table (Markdown).

Input: the lines the bench binaries and bench/py/*.py print (DESIGN.md section 6); other lines
are ignored:

  name=<area>.<variant> impl=<impl> value=<median> unit=<unit> [op=<noun>] min=<v> max=<v> reps=<R>

impl is any one word: mproc, c-raw (the strongest program an expert writes with the same OS
facilities), python, or a physical ceiling beyond c-raw under its own name (c-shm, c-robust,
c-raw-pipe, ...). op names the operation an ops/s rate counts (task, item, line) and is required
with ops/s; the table shows it in the unit column ("ops/s of line").

  bench/report.py [--charts DIR] < results

Output: one row per name with each implementation's median, then one ratio per implementation other
than mproc: "mproc vs <impl>". The columns come from the impls seen: mproc, c-raw, the other c-*
in name order, python, then the rest. A ratio is mproc's cost over the other's cost, whatever the
unit: for time units (ns/op, us/op: lower is better) value(mproc) / value(other); for rates (ops/s,
GB/s, MB/s: higher is better) value(other) / value(mproc). So 1.00x = the same, 1.50x = mproc is
1.5 times slower, 0.50x = mproc is twice as fast. Goals are stated as this ratio. Exit status 1 if
there are no result lines or a line is malformed.

--charts DIR also draws, from the sweep lines present, the charts of docs/PERFORMANCE.md as SVG files
in DIR (matplotlib: Debian's python3-matplotlib; the table needs nothing beyond Python):
  start-per-method.svg    process.child.<fork|spawn|forkserver>.<placement>: mproc, c-raw, python
  start-vs-memory.svg     the same with .rss256m / .rss1g: the cost against the parent's memory
  bandwidth-vs-size.svg   process.bw.conn.<4k|64k|1m|16m>.<placement>: every implementation
A chart whose lines are all missing is skipped with a note on stderr.
"""
import argparse
import os
import re
import sys

LOWER_BETTER = {"ns/op", "us/op"}
HIGHER_BETTER = {"ops/s", "GB/s", "MB/s"}
FIELDS = ("name", "impl", "value", "unit", "min", "max", "reps")
WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def parse(lines):
    results, errors = {}, []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line.startswith("name="):
            continue
        try:
            kv = dict(field.split("=", 1) for field in line.split())
            missing = [f for f in FIELDS if f not in kv]
            if missing:
                raise ValueError("missing " + ",".join(missing))
            if kv["unit"] not in LOWER_BETTER | HIGHER_BETTER:
                raise ValueError("unknown unit " + kv["unit"])
            if not WORD.match(kv["impl"]):
                raise ValueError("bad impl " + kv["impl"])
            op = kv.get("op")
            if op is not None and not WORD.match(op):
                raise ValueError("bad op " + op)
            if kv["unit"] == "ops/s" and not op:
                raise ValueError("ops/s without op= (name the operation counted)")
            value = float(kv["value"])
        except ValueError as e:
            errors.append("line %d: %s: %s" % (n, e, line))
            continue
        row = results.setdefault(kv["name"], {"unit": kv["unit"], "op": op, "impls": {}})
        if row["unit"] != kv["unit"]:
            errors.append("line %d: %s has units %s and %s" % (n, kv["name"], row["unit"], kv["unit"]))
        elif row["op"] != op:
            errors.append("line %d: %s counts ops %s and %s" % (n, kv["name"], row["op"], op))
        row["impls"][kv["impl"]] = value
    return results, errors


def impl_order(results):
    """mproc, c-raw, the other c-* by name, python, then anything else by name."""
    seen = {impl for r in results.values() for impl in r["impls"]}

    def key(impl):
        if impl == "mproc":
            return (0, impl)
        if impl == "c-raw":
            return (1, impl)
        if impl.startswith("c-"):
            return (2, impl)
        if impl == "python":
            return (3, impl)
        return (4, impl)
    return sorted(seen, key=key)


def fmt(v):
    if v is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= 10 * div:
            return "%.3g%s" % (v / div, suffix)
    return "%.3g" % v if abs(v) < 1000 else "%.0f" % v


def cost_ratio(unit, mine, other):
    """mproc's cost over the other's: > 1 means mproc is slower."""
    if mine is None or other is None or mine <= 0 or other <= 0:
        return None
    return mine / other if unit in LOWER_BETTER else other / mine


def unit_label(row):
    unit = row["unit"]
    label = "%s of %s" % (unit, row["op"]) if row["op"] else unit
    return "%s (%s)" % (label, "lower" if unit in LOWER_BETTER else "higher")


def table(results):
    impls = impl_order(results)
    others = [i for i in impls if i != "mproc"]
    head = ["name", "unit (better)"] + impls + ["mproc vs " + o for o in others]
    out = ["| " + " | ".join(head) + " |",
           "|---|---|" + "---:|" * (len(impls) + len(others))]
    for name in sorted(results, key=lambda s: (s.split(".")[0], s)):
        r = results[name]
        vals = r["impls"]
        cells = [name, unit_label(r)] + [fmt(vals.get(i)) for i in impls]
        for other in others:
            x = cost_ratio(r["unit"], vals.get("mproc"), vals.get(other))
            cells.append("-" if x is None else "%.2fx" % x)
        out.append("| " + " | ".join(cells) + " |")
    return out


# ---- charts ----------------------------------------------------------------------------------------

PLACEMENTS = ("same-cpu", "cross-cpu")
METHODS = ("fork", "spawn", "forkserver")
RSS = (("", 0), ("rss256m", 256), ("rss1g", 1024))  # name tag, MiB the parent holds
SIZES = (("4k", 4 << 10), ("64k", 64 << 10), ("1m", 1 << 20), ("16m", 16 << 20))
# one look per implementation, the same in every chart: mproc stands out, the raw C programs are greys
STYLE = {"mproc": dict(color="#1f6fb4", linewidth=2.4, marker="o", zorder=5),
         "c-raw": dict(color="#333333", linewidth=1.4, marker="s"),
         "c-raw-pipe": dict(color="#888888", linewidth=1.2, marker="v", linestyle="--"),
         "c-shm": dict(color="#2a9d3c", linewidth=1.4, marker="D", linestyle=":"),
         "python": dict(color="#e07b00", linewidth=1.4, marker="^")}


def value(results, name, impl):
    row = results.get(name)
    return row["impls"].get(impl) if row else None


def chart_start_per_method(results, plt):
    impls = [i for i in ("mproc", "c-raw", "python")
             if any(value(results, "process.child.%s.%s" % (m, p), i) for m in METHODS for p in PLACEMENTS)]
    if not impls:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    width = 0.8 / len(impls)
    for ax, pl in zip(axes, PLACEMENTS):
        for k, impl in enumerate(impls):
            xs, ys = [], []
            for m, method in enumerate(METHODS):
                v = value(results, "process.child.%s.%s" % (method, pl), impl)
                if v:
                    xs.append(m + (k - (len(impls) - 1) / 2) * width)
                    ys.append(v)
            st = STYLE.get(impl, {})
            ax.bar(xs, ys, width * 0.92, color=st.get("color"), label=impl)
            for x, y in zip(xs, ys):
                ax.annotate(fmt(y), (x, y), ha="center", va="bottom", fontsize=7, xytext=(0, 1),
                            textcoords="offset points")
        ax.set_xticks(range(len(METHODS)), METHODS)
        ax.set_yscale("log")
        ax.set_title(pl)
        ax.grid(axis="y", which="both", alpha=0.25)
    axes[0].set_ylabel("us per start and join (log, lower is better)")
    axes[0].legend(frameon=False)
    fig.suptitle("Starting a child that runs a function, by start method")
    return fig


def chart_start_vs_memory(results, plt):
    def name(method, tag, pl):
        return "process.child.%s%s.%s" % (method, "." + tag if tag else "", pl)
    if not any(value(results, name(m, t, p), "mproc") for m in METHODS for t, _ in RSS[1:] for p in PLACEMENTS):
        return None
    fig, axes = plt.subplots(1, len(METHODS), figsize=(12, 4), sharey=True)
    for ax, method in zip(axes, METHODS):
        for impl in ("mproc", "c-raw", "python"):
            for pl, dash in zip(PLACEMENTS, ("-", "--")):
                pts = [(mib, value(results, name(method, tag, pl), impl)) for tag, mib in RSS]
                pts = [(x, y) for x, y in pts if y]
                if not pts:
                    continue
                st = dict(STYLE.get(impl, {}))
                st["linestyle"] = dash
                ax.plot([x for x, _ in pts], [y for _, y in pts], label="%s, %s" % (impl, pl), **st)
        ax.set_yscale("log")
        ax.set_xticks([mib for _, mib in RSS], ["0", "256 MiB", "1 GiB"])
        ax.set_xlabel("memory the parent holds")
        ax.set_title(method)
        ax.grid(which="both", alpha=0.25)
    axes[0].set_ylabel("us per start and join (log, lower is better)")
    axes[-1].legend(frameon=False, fontsize=7)
    fig.suptitle("Start cost against the parent's memory (c-raw: fork, or posix_spawn of the program)")
    return fig


def chart_bandwidth(results, plt):
    impls = [i for i in impl_order(results)
             if any(value(results, "process.bw.conn.%s.%s" % (s, p), i) for s, _ in SIZES for p in PLACEMENTS)]
    if not impls:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, pl in zip(axes, PLACEMENTS):
        for impl in impls:
            pts = [(n, value(results, "process.bw.conn.%s.%s" % (tag, pl), impl)) for tag, n in SIZES]
            pts = [(x, y) for x, y in pts if y]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], label=impl, **STYLE.get(impl, {}))
        ax.set_xscale("log", base=2)
        ax.set_xticks([n for _, n in SIZES], [tag.upper().replace("K", " KiB").replace("M", " MiB")
                                              for tag, _ in SIZES])
        ax.set_xlabel("message size")
        ax.set_title(pl)
        ax.grid(which="both", alpha=0.25)
    axes[0].set_ylabel("GB/s (higher is better)")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Messages over a connection between two processes")
    return fig


def charts(results, outdir):
    try:
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: --charts needs matplotlib (Debian: python3-matplotlib)", file=sys.stderr)
        return 1
    plt.rcParams.update({"svg.hashsalt": "mproc", "font.size": 9})  # the same file for the same data
    os.makedirs(outdir, exist_ok=True)
    for file, draw in (("start-per-method.svg", chart_start_per_method),
                       ("start-vs-memory.svg", chart_start_vs_memory),
                       ("bandwidth-vs-size.svg", chart_bandwidth)):
        fig = draw(results, plt)
        if fig is None:
            print("report: %s: none of its lines are in the results, skipped" % file, file=sys.stderr)
            continue
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, file), metadata={"Date": None})
        plt.close(fig)
        print("report: wrote %s" % os.path.join(outdir, file), file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser(description="the ratio table (and charts) of benchmark result lines")
    ap.add_argument("--charts", metavar="DIR", help="also draw the charts as SVG files in DIR")
    args = ap.parse_args()
    results, errors = parse(sys.stdin)
    for e in errors:
        print("report: " + e, file=sys.stderr)
    if not results:
        print("report: no result lines on stdin", file=sys.stderr)
        return 1
    print("\n".join(table(results)))
    print()
    print("Values are medians. Ratios are mproc's cost over the other's (time per op, or 1/rate):")
    print("1.00x = the same, above 1 = mproc slower, below 1 = mproc faster.")
    rc = charts(results, args.charts) if args.charts else 0
    return 1 if errors else rc


if __name__ == "__main__":
    sys.exit(main())
