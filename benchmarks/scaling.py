"""Thread scaling of rnnfast and PyTorch on the recurrent workloads (issue 21, item 4).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/scaling.py \\
        [--workloads W1 W2 W3 W4] [--cells ...] [--threads 1 2] [--rounds 3] [--json FILE]

Each (workload, cell, framework, thread count) runs in its own process through
compare.py's child mode (the same models, data and timer as compare.py). The
thread counts of one case run back to back inside every round, so that a
slow phase of a shared host hits them alike. Prints, per case, the median
train step and inference forward at each thread count, and the scaling
efficiency t(1) / (n * t(n)) of the largest count against one thread.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", nargs="+", default=list(compare.WORKLOADS),
                   choices=list(compare.WORKLOADS))
    p.add_argument("--cells", nargs="+", default=list(compare.CELLS), choices=list(compare.CELLS))
    p.add_argument("--frameworks", nargs="+", default=["rnnfast", "torch"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=0, help="timed repeats per process (default by size)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    threads = sorted(set(args.threads))
    frameworks = [f for f in args.frameworks if f == "rnnfast" or compare.available(f)]
    results = {}
    for _ in range(args.rounds):
        for w in args.workloads:
            repeats = args.repeats or compare.REPEATS[w]
            for cell in args.cells:
                for fw in frameworks:
                    for n in threads:
                        cmd = [sys.executable, compare.__file__, "--child", fw, "--workload", w,
                               "--cell", cell, "--repeats", str(repeats), "--threads", str(n)]
                        out = subprocess.run(cmd, capture_output=True, text=True)
                        if out.returncode != 0:
                            print(out.stderr, file=sys.stderr)
                            raise SystemExit(f"{fw} {w} {cell} threads={n} failed")
                        r = json.loads(out.stdout.strip().splitlines()[-1])
                        results.setdefault((w, cell, fw, n), []).append(r)

    def med(w, cell, fw, n, key):
        rs = results.get((w, cell, fw, n))
        return statistics.median(r[key] for r in rs) * 1e3 if rs else None

    lo, hi = threads[0], threads[-1]
    print(f"{os.cpu_count()} CPUs; rounds {args.rounds}; frameworks {frameworks}; "
          f"efficiency = t({lo}) / ({hi // lo} * t({hi}))")
    print()
    head = "| case | " + " | ".join(
        f"{fw} {kind} ms {n}t" for kind in ("train", "infer") for fw in frameworks for n in threads)
    head += " | " + " | ".join(f"{fw} {kind} eff." for kind in ("train", "infer") for fw in frameworks)
    print(head + " |")
    print("|---" * (1 + len(frameworks) * len(threads) * 2 + len(frameworks) * 2) + "|")
    for w in args.workloads:
        for cell in args.cells:
            row = [f"{w} {cell}"]
            effs = []
            for kind in ("train", "infer"):
                for fw in frameworks:
                    for n in threads:
                        t = med(w, cell, fw, n, kind)
                        row.append(f"{t:.2f}" if t else "-")
            for kind in ("train", "infer"):
                for fw in frameworks:
                    a, b = med(w, cell, fw, lo, kind), med(w, cell, fw, hi, kind)
                    effs.append(f"{a / (hi / lo * b):.0%}" if a and b else "-")
            print("| " + " | ".join(row + effs) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"|".join(map(str, k)): v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
