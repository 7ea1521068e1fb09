#!/usr/bin/env python3
"""Plain PyTorch eager reference for scripts/gpu-check.sh: trains the network
of `deepreduce count SPEC --input CxHxW --classes N --layers --format json`
(python/deepreduce_model.py: the same layers as deepreduce's) the way
`deepreduce train` does by default, on a GPU, and prints images/s per epoch.

Same as deepreduce train: batch 128, SGD lr 0.1 momentum 0.9 Nesterov, weight
decay 5e-4, the step schedule (x0.1 at 50% and 75% of training, set every
step), a random crop with reflect padding and a random horizontal flip, a
reshuffle every epoch, NCHW tensors, cuDNN autotuning off (LibTorch's and
PyTorch's default), and a host sync per step (the loss and the correct count
read back, as deepreduce's progress line does). bf16: forward and loss under
torch.autocast(bfloat16), weights and optimizer in fp32.

Different on purpose, so that this is the plain eager way: the images are
random bytes held on the CPU; each batch is gathered there, copied to the GPU
and augmented there (deepreduce's loader augments on CPU threads); no test
pass between epochs (deepreduce's images/s leaves its test pass out too).
Prints one JSON object.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import deepreduce_model as dm  # noqa: E402


def lr_at(base, progress):
    """deepreduce's step schedule: x0.1 at 50% and 75% of training."""
    return base * (0.1 ** ((progress >= 0.5) + (progress >= 0.75)))


def augment(x, pad, flip):
    """Random crop (reflect padding) and horizontal flip, per image, on x's device."""
    b, _, h, w = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (b,), device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (b,), device=x.device)
        rows = oy[:, None] + torch.arange(h, device=x.device)
        cols = ox[:, None] + torch.arange(w, device=x.device)
        x = xp[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 3, 1, 2).contiguous()
    if flip:
        m = torch.rand(b, device=x.device) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(3), x)
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="output of `deepreduce count SPEC ... --layers --format json`")
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--pad", type=int, default=-1, help="-1: 4 for 32x32 and larger, else 2 (as deepreduce)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_eager.py: torch.cuda.is_available() is False")
    torch.manual_seed(a.seed)
    torch.backends.cudnn.benchmark = False
    desc = json.load(open(a.json))
    c, h, w = (int(v) for v in desc["input"].split("x"))
    classes = int(desc["classes"])
    pad = a.pad if a.pad >= 0 else (4 if h >= 32 else 2)
    net = dm.from_json(desc).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    images = torch.randint(0, 256, (a.images, c, h, w), dtype=torch.uint8)
    labels = torch.randint(0, classes, (a.images,))
    if dev.type == "cuda":
        images, labels = images.pin_memory(), labels.pin_memory()
    steps = (a.images + a.batch - 1) // a.batch
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")

    epochs = []
    net.train()
    for epoch in range(a.epochs):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(a.images)
        loss_sum = correct = 0.0
        for s in range(steps):
            idx = perm[s * a.batch:(s + 1) * a.batch]
            x = images[idx].to(dev, non_blocking=True).float().div_(255).sub_(0.5).div_(0.25)
            y = labels[idx].to(dev, non_blocking=True)
            x = augment(x, pad, True)
            for g in opt.param_groups:
                g["lr"] = lr_at(a.lr, (epoch + s / steps) / a.epochs)
            with autocast:
                out = net(x)
                loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * x.shape[0]
            correct += (out.argmax(1) == y).sum().item()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        sec = time.perf_counter() - t0
        epochs.append({"epoch": epoch + 1, "seconds": sec, "images_per_s": a.images / sec,
                       "train_loss": loss_sum / a.images, "train_acc": correct / a.images})
        print(f"eager {a.precision} epoch {epoch + 1}/{a.epochs}: {a.images / sec:.0f} img/s ({sec:.1f} s)",
              file=sys.stderr)

    print(json.dumps({
        "impl": "pytorch-eager", "spec": desc["spec"], "input": desc["input"], "classes": classes,
        "precision": a.precision, "batch": a.batch, "images": a.images, "epochs": epochs,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }))


if __name__ == "__main__":
    main()
