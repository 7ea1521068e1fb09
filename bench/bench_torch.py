#!/usr/bin/python3
"""Python PyTorch eager twin of bench/bench_step.cpp.

Builds the network from `deepreduce count SPEC --layers --format json`
(python/deepreduce_model.py: the same module names, convolutions, BatchNorms
and live ReLUs; removed ReLUs are absent) and times a training step (forward,
cross-entropy, backward, SGD with Nesterov momentum and weight decay) or an
inference step (eval mode, no grad) on a fixed random batch. Prints one JSON
line with the same fields as deepreduce_bench.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import deepreduce_model as dm  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="output of `deepreduce count SPEC --layers --format json`")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", choices=["train", "eval"], default="train")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels-last", action="store_true",
                    help="not the baseline: PyTorch eager with channels-last tensors, for reference")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    desc = json.load(open(a.json))
    net = dm.from_json(desc)
    c, h, w = (int(v) for v in desc["input"].split("x"))
    x = torch.randn(a.batch, c, h, w)
    y = torch.randint(0, desc["classes"], (a.batch,))
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

    if a.mode == "train":
        net.train()

        def step():
            out = net(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
    else:
        net.eval()

        def step():
            with torch.no_grad():
                return net(x).sum().item()

    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "pytorch-eager" + ("-cl" if a.channels_last else ""),
        "spec": desc["spec"], "mode": a.mode, "batch": a.batch, "threads": torch.get_num_threads(),
        "steps": a.steps, "step_s_median": med, "step_s_mean": statistics.mean(times),
        "images_per_s": a.batch / med,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
