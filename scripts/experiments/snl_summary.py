#!/usr/bin/env python3
"""Summary of scripts/experiments/snl_vs_deepreduce.sh: markdown tables on
stdout and OUT/snl_vs_deepreduce.png (gnuplot), mean accuracy over the seeds.

  snl_summary.py OUT BUDGETS EPOCHS "SEEDS" START_EPOCHS

Per budget, DeepReDuce's network is the one candidate (the same for every
seed) with the best mean accuracy among those within the budget, as
`reduce` picks its best network per budget; SNL and the combination give one
network per budget and seed."""
import json
import os
import statistics
import subprocess
import sys

out, budgets, epochs, seeds, start_epochs = (sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]),
                                             sys.argv[4].split(), int(sys.argv[5]))


def count(b):
    return int(float(b[:-1]) * (1000 if b[-1] in "kK" else 1e6)) if b[-1] in "kKmM" else int(b)


def load(p):
    return json.load(open(p)) if os.path.exists(p) else None


def fmt(accs):
    return f"{statistics.mean(accs):.2f}", ", ".join(f"{a:.2f}" for a in accs)


budgets = [count(b) for b in budgets]
teachers = [load(f"{out}/seed{s}/teacher/result.json") for s in seeds]
# DeepReDuce: every candidate's accuracy per seed.
cands = {}  # spec -> {"relus", "step", "accs"}
for s in seeds:
    for r in (load(f"{out}/seed{s}/deepreduce/results.json") or {}).get("steps", []):
        if r["method"] == "deepreduce":
            c = cands.setdefault(r["spec"], {"relus": r["relus"], "step": r["step"], "accs": []})
            c["accs"].append(r["acc"])
cands = {k: v for k, v in cands.items() if len(v["accs"]) == len(seeds)}
# SNL and DeepReDuce + SNL: per budget, the points of every seed.
points = {}  # (method, budget) -> {"relus", "accs", "epochs"}
for name, sub in (("SNL", "snl"), ("DeepReDuce + SNL", "combined")):
    for s in seeds:
        for p in (load(f"{out}/seed{s}/{sub}/results.json") or {}).get("points", []):
            e = p["search"] + p["finetune"] + (start_epochs if sub == "combined" else 0)
            v = points.setdefault((name, p["budget"]), {"relus": p["relus"], "accs": [], "epochs": []})
            v["accs"].append(p["acc"])
            v["epochs"].append(e)

print(f"resnet18:alpha=0.25 (108,544 ReLUs) on Fashion-MNIST, first {os.environ.get('LIMIT', '10000')} train and "
      f"test images; teachers {fmt([100 * t['test_acc'] for t in teachers])[1]}% (seeds {', '.join(seeds)}); "
      f"{epochs} training epochs per point after the teacher. Accuracy in %, mean over the seeds.\n")
print("| budget | method | ReLUs | accuracy (mean) | per seed | epochs per point | network |")
print("|---:|---|---:|---:|---|---|---|")
series = {"DeepReDuce": {}, "SNL": {}, "DeepReDuce + SNL": {}}
for b in budgets:
    fit = [(statistics.mean(c["accs"]), spec, c) for spec, c in cands.items() if c["relus"] <= b]
    if fit:
        _, spec, c = max(fit, key=lambda t: t[0])
        print(f"| {b:,} | DeepReDuce | {c['relus']:,} | {fmt(c['accs'])[0]} | {fmt(c['accs'])[1]} | {epochs} | "
              f"`{spec}` |")
    for name in ("SNL", "DeepReDuce + SNL"):
        v = points.get((name, b))
        if not v or len(v["accs"]) != len(seeds):
            continue
        series[name][v["relus"]] = statistics.mean(v["accs"])
        e = sorted(set(v["epochs"]))
        print(f"| {b:,} | {name} | {v['relus']:,} | {fmt(v['accs'])[0]} | {fmt(v['accs'])[1]} | "
              f"{', '.join(map(str, e))} | pixel masks |")

print("\nEvery DeepReDuce candidate (the same networks for every seed):\n")
print("| optimisation step | network | ReLUs | accuracy (mean) | per seed |")
print("|---|---|---:|---:|---|")
for spec, c in sorted(cands.items(), key=lambda kv: -kv[1]["relus"]):
    series["DeepReDuce"][c["relus"]] = statistics.mean(c["accs"])
    print(f"| {c['step']} | `{spec}` | {c['relus']:,} | {fmt(c['accs'])[0]} | {fmt(c['accs'])[1]} |")

# One plot: accuracy against ReLUs (log), a series per method, the teacher marked.
dat = f"{out}/snl_vs_deepreduce.dat"
with open(dat, "w") as f:
    for name, pts in series.items():
        f.write(f'"{name}"\n')
        for r in sorted(pts):
            f.write(f"{r} {pts[r]:.3f}\n")
        f.write("\n\n")
    f.write(f'"teacher"\n108544 {statistics.mean(100 * t["test_acc"] for t in teachers):.3f}\n')
png = f"{out}/snl_vs_deepreduce.png"
subprocess.run(["gnuplot"], check=True, text=True, input=f"""
set terminal pngcairo size 1000,560 font ",11"
set output "{png}"
set logscale x
set xrange [2500:150000]
set xtics ("3K" 3000, "5K" 5000, "10K" 10000, "20K" 20000, "50K" 50000, "100K" 100000)
set xlabel "live ReLUs (log scale)"
set ylabel "test accuracy (%, mean of {len(seeds)} seeds)"
set title "resnet18:alpha=0.25 on Fashion-MNIST: DeepReDuce, SNL and both, {epochs} epochs per point"
set key bottom right
set grid
plot "{dat}" index 0 with linespoints pt 7 ps 1.3 title columnhead, \\
     "{dat}" index 1 with linespoints pt 5 ps 1.3 title columnhead, \\
     "{dat}" index 2 with linespoints pt 9 ps 1.5 title columnhead, \\
     "{dat}" index 3 with points pt 3 ps 2.5 title columnhead
""")
print(f"\n![DeepReDuce, SNL and both](snl_vs_deepreduce.png)")
