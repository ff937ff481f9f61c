#!/usr/bin/env python3
"""Read benchmark result lines on stdin and print the ratio table (Markdown).

Input: the lines the bench binaries and bench/py/*.py print (DESIGN.md section 6); other lines
are ignored:

  name=<area>.<variant> impl=<impl> value=<median> unit=<unit> [op=<noun>] min=<v> max=<v> reps=<R>

impl is any one word: mproc, c-raw (the strongest program an expert writes with the same OS
facilities), python, or a physical ceiling beyond c-raw under its own name (c-shm, c-robust,
c-raw-pipe, ...). op names the operation an ops/s rate counts (task, item, line) and is required
with ops/s; the table shows it in the unit column ("ops/s of line").

Output: one row per name with each implementation's median, then one ratio per implementation other
than mproc: "mproc vs <impl>". The columns come from the impls seen: mproc, c-raw, the other c-*
in name order, python, then the rest. A ratio is mproc's cost over the other's cost, whatever the
unit: for time units (ns/op, us/op: lower is better) value(mproc) / value(other); for rates (ops/s,
GB/s, MB/s: higher is better) value(other) / value(mproc). So 1.00x = the same, 1.50x = mproc is
1.5 times slower, 0.50x = mproc is twice as fast. Goals are stated as this ratio. Exit status 1 if
there are no result lines or a line is malformed.
"""
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


def main():
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
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
