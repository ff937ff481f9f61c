#!/usr/bin/env python3
"""Read benchmark result lines on stdin and print the ratio table (Markdown).

Input: the lines the bench binaries and bench/py/*.py print (DESIGN.md section 6); other lines
are ignored:

  name=<area>.<variant> impl=<mproc|c-raw|python> value=<median> unit=<unit> min=<v> max=<v> reps=<R>

Output: one row per name with each implementation's median and two ratios, "mproc vs c-raw" and
"mproc vs python". A ratio is mproc's cost over the other's cost, whatever the unit: for time
units (ns/op, us/op: lower is better) value(mproc) / value(other); for rates (ops/s, GB/s, MB/s:
higher is better) value(other) / value(mproc). So 1.00x = the same, 1.50x = mproc is 1.5 times
slower, 0.50x = mproc is twice as fast. Exit status 1 if there are no result lines or a line is
malformed.
"""
import sys

LOWER_BETTER = {"ns/op", "us/op"}
HIGHER_BETTER = {"ops/s", "GB/s", "MB/s"}
IMPLS = ("mproc", "c-raw", "python")
FIELDS = ("name", "impl", "value", "unit", "min", "max", "reps")


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
            if kv["impl"] not in IMPLS:
                raise ValueError("unknown impl " + kv["impl"])
            value = float(kv["value"])
        except ValueError as e:
            errors.append("line %d: %s: %s" % (n, e, line))
            continue
        row = results.setdefault(kv["name"], {"unit": kv["unit"]})
        if row["unit"] != kv["unit"]:
            errors.append("line %d: %s has units %s and %s" % (n, kv["name"], row["unit"], kv["unit"]))
        row[kv["impl"]] = value
    return results, errors


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


def table(results):
    out = ["| name | unit (better) | mproc | c-raw | python | mproc vs c-raw | mproc vs python |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for name in sorted(results, key=lambda s: (s.split(".")[0], s)):
        r = results[name]
        unit = r["unit"]
        better = "lower" if unit in LOWER_BETTER else "higher"
        ratios = []
        for other in ("c-raw", "python"):
            x = cost_ratio(unit, r.get("mproc"), r.get(other))
            ratios.append("-" if x is None else "%.2fx" % x)
        out.append("| %s | %s (%s) | %s | %s | %s | %s | %s |" % (
            name, unit, better, fmt(r.get("mproc")), fmt(r.get("c-raw")), fmt(r.get("python")),
            ratios[0], ratios[1]))
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
