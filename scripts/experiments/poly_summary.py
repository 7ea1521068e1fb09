#!/usr/bin/env python3
"""Summary of scripts/experiments/poly_vs_snl.sh: markdown tables on stdout,
mean accuracy over the seeds, and the private inference of every point.

  poly_summary.py OUT BUDGETS "SEEDS"

Per budget: SNL's and polynomial replacement's accuracy (one network per
budget and seed), the polynomial elements, and from `deepreduce pi run`
(seed 0, or the first seed given): latency, online MB, rounds, server key MB
per image and the agreement of the private argmax with the float model."""
import json
import os
import statistics
import sys

out, budgets, seeds = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split()


def count(b):
    return int(float(b[:-1]) * (1000 if b[-1] in "kK" else 1e6)) if b[-1] in "kKmM" else int(b)


def load(p):
    return json.load(open(p)) if os.path.exists(p) else None


budgets = [count(b) for b in budgets]
teachers = [load(f"{out}/seed{s}/teacher/result.json") for s in seeds]
points = {}  # (sub, budget) -> {"relus", "polys", "accs", "epochs"}
for sub in ("snl", "poly"):
    for s in seeds:
        for p in (load(f"{out}/seed{s}/{sub}/results.json") or {}).get("points", []):
            v = points.setdefault((sub, p["budget"]), {"relus": p["relus"], "polys": p.get("polys", 0), "accs": [],
                                                       "epochs": []})
            v["accs"].append(p["acc"])
            v["epochs"].append(p["search"] + p["finetune"])

teacher_accs = ", ".join("%.2f" % (100 * t["test_acc"]) for t in teachers if t)
print(f"Accuracy in %, mean over seeds {', '.join(seeds)} (teachers {teacher_accs}):\n")
print("| budget | SNL | poly | poly - SNL | poly elements | epochs per point (SNL / poly) |")
print("|---:|---:|---:|---:|---:|---|")
for b in budgets:
    snl, poly = points.get(("snl", b)), points.get(("poly", b))
    if not snl or not poly:
        continue
    a, c = statistics.mean(snl["accs"]), statistics.mean(poly["accs"])
    print(f"| {b:,} | {a:.2f} | {c:.2f} | {c - a:+.2f} | {poly['polys']:,} | "
          f"{', '.join(map(str, snl['epochs']))} / {', '.join(map(str, poly['epochs']))} |")

seed = seeds[0]
print(f"\nPrivate inference (seed {seed}; semi-honest two-party computation with a non-colluding dealer, "
      "three processes on 127.0.0.1, one thread each; measured):\n")
print("| network | live ReLUs | poly elements | images | agreement | latency s/image | online MB/image | rounds | "
      "server key MB/image | LAN s (modelled) | WAN s (modelled) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
rows = [("teacher", f"{out}/seed{seed}/pi/seed{seed}-teacher.json")]
for b in budgets:
    for sub, name in (("snl", "SNL"), ("poly", "poly")):
        rows.append((f"{name} budget {b:,}", f"{out}/seed{seed}/pi/{sub}-budget-{b}.json"))
for name, path in rows:
    s = load(path)
    if not s:
        continue
    n = s["images"]
    print(f"| {name} | {s['relus']:,} | {s.get('polys', 0):,} | {n} | {s['agreement']:.3f} | "
          f"{s['seconds_per_image']:.3f} | {s['online_bytes'] / n / 1e6:.2f} | {s['rounds']} | "
          f"{s['key_bytes_per_image']['server'] / 1e6:.1f} | {s['modelled']['lan']['seconds_per_image']:.3f} | "
          f"{s['modelled']['wan']['seconds_per_image']:.2f} |")
