#!/usr/bin/python3
"""Plain-PyTorch reference of deepreduce's default one-epoch recipe (issue 17, part 0).

    /usr/bin/python3 scripts/experiments/pytorch_reference.py --seeds 0 1 2

resnet18 at alpha 0.25 (CIFAR stem: 3x3 conv, no max-pool; BasicBlocks
16/32/64/128; 1x1-conv + BN shortcuts where the shape changes; global average
pool; FC), SGD with Nesterov momentum 0.9, lr 0.1 x0.1 at 50% and 75% of the
steps (set per step), weight decay 5e-4 on every parameter, batch 128 (the
last batch of 96 kept), reflect pad 2 + random 28x28 crop + horizontal flip,
per-channel normalisation with the training split's mean and (population)
std, He-normal fan-out convolutions, PyTorch defaults elsewhere (BatchNorm
momentum 0.1, eps 1e-5, weight 1, bias 0; nn.Linear's init). The IDX files
are read here; nothing of deepreduce runs unless asked (--arch dr needs the
JSON of `deepreduce count resnet18:alpha=0.25 --dataset fashion-mnist
--layers --format json`).

Each option switches one detail to another behaviour (deepreduce's, or a
deliberately different one) so that a gap can be bisected; it prints one JSON
line per seed with the test accuracy after the epochs.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

M64 = (1 << 64) - 1


# ---------------------------------------------------------------- data


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 2051:
        h, w = struct.unpack(">II", raw[8:16])
        return torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).view(n, 1, h, w)
    if magic == 2049:
        return torch.frombuffer(bytearray(raw[8:]), dtype=torch.uint8).long()
    raise ValueError("%s: not an IDX image or label file" % path)


def load(root):
    def pair(kind):
        return (read_idx(os.path.join(root, kind + "-images-idx3-ubyte.gz")),
                read_idx(os.path.join(root, kind + "-labels-idx1-ubyte.gz")))
    return pair("train"), pair("t10k")


# deepreduce's generator (src/data/sampling.cpp): splitmix64 finaliser, hashed per (seed, epoch, batch, position).
def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def dr_hash(a, b, c, d):
    h = mix64(a ^ 0x243F6A8885A308D3)
    h = mix64(h ^ b)
    h = mix64(h ^ c)
    return mix64(h ^ d)


class DrRng:
    def __init__(self, s):
        self.s = s

    def next(self):
        self.s = mix64(self.s)
        return self.s

    def below(self, n):
        return (self.next() >> 11) % n


def dr_perm(seed, epoch, n):
    rng = DrRng(dr_hash(seed, epoch, 0x7065726D, 0))
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        p[i], p[j] = p[j], p[i]
    return torch.tensor(p)


def dr_aug(seed, epoch, k, b, pad):
    """deepreduce's crop offsets (in -pad..pad) and flips of batch k's b images."""
    ox, oy, fl = [], [], []
    span = 2 * pad + 1
    for j in range(b):
        rng = DrRng(dr_hash(seed, epoch, k, j))
        ox.append(rng.below(span) - pad)
        oy.append(rng.below(span) - pad)
        fl.append(bool(rng.next() >> 63))
    return torch.tensor(ox), torch.tensor(oy), torch.tensor(fl)


def reflect_index(i, n):
    period = 2 * n - 2
    i = i % period
    return torch.where(i >= n, period - i, i)


def augment(x, ox, oy, flip, pad, zero_pad=False):
    """x [B,C,H,W] float; output pixel (y, x) reads source (y+oy, x'+ox), x' = W-1-x when flipped:
    torchvision's reflect-pad + RandomCrop + RandomHorizontalFlip (and deepreduce's loader)."""
    B, C, H, W = x.shape
    xs = torch.arange(W)
    cols = torch.where(flip[:, None], W - 1 - xs[None, :], xs[None, :]) + ox[:, None]  # [B, W]
    rows = torch.arange(H)[None, :] + oy[:, None]  # [B, H]
    if zero_pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        rows, cols = rows + pad, cols + pad
        return xp[torch.arange(B)[:, None, None, None], torch.arange(C)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]
    rows, cols = reflect_index(rows, H), reflect_index(cols, W)
    return x[torch.arange(B)[:, None, None, None], torch.arange(C)[None, :, None, None],
             rows[:, None, :, None], cols[:, None, None, :]]


# ---------------------------------------------------------------- model


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    """The common CIFAR ResNet18 (kuangliu/pytorch-cifar style), width x alpha."""

    def __init__(self, in_ch=1, classes=10, alpha=0.25):
        super().__init__()
        w = [int(round(c * alpha)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_ch, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        layers, cin = [], w[0]
        for i, c in enumerate(w):
            blocks = []
            for j in range(2):
                blocks.append(BasicBlock(cin, c, 2 if (j == 0 and i > 0) else 1))
                cin = c
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(w[3], classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(a):
    if a.arch == "tv":
        return CifarResNet18(alpha=0.25)
    import deepreduce_model as dm
    return dm.from_json(a.arch_json)


def init(net, a):
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and a.conv_init == "kaiming":
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.momentum, m.eps = a.bn_momentum, a.bn_eps
        elif isinstance(m, nn.Linear) and a.fc_init == "zero":
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and a.fc_init == "normal":
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- training


def lr_at(a, progress):
    if a.schedule == "cosine":
        return 0.5 * a.lr * (1 + math.cos(math.pi * progress))
    lr = a.lr
    if progress >= 0.5:
        lr *= 0.1
    if progress >= 0.75:
        lr *= 0.1
    return lr


def evaluate(net, xt, yt, cl):
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(xt), 256):
            x = xt[i:i + 256]
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            out = net(x)
            loss += F.cross_entropy(out, yt[i:i + 256], reduction="sum").item()
            correct += (out.argmax(1) == yt[i:i + 256]).sum().item()
    return correct / len(xt), loss / len(xt)


def run(a, seed, data):
    (xtr_u8, ytr), (xte_u8, yte) = data
    xtr = xtr_u8.float() / 255
    xte = xte_u8.float() / 255
    mean = xtr.mean(dim=(0, 2, 3), keepdim=True)
    std = xtr.std(dim=(0, 2, 3), keepdim=True, unbiased=a.std == "sample")
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    n = len(xtr)

    torch.manual_seed(seed)
    net = build(a)
    init(net, a)
    if a.init_from:
        # e.g. a deepreduce run's weights.pt after one step at lr 1e-12 on --limit 128 (its init, BN
        # statistics reset to 0 and 1 here)
        sd = torch.load(a.init_from % seed if "%" in a.init_from else a.init_from)
        for k, v in sd.items():
            if k.endswith("running_mean") or k.endswith("num_batches_tracked"):
                v.zero_()
            elif k.endswith("running_var"):
                v.fill_(1)
        net.load_state_dict(sd)
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if a.wd_bn:
        params = [{"params": list(net.parameters()), "weight_decay": a.wd}]
    else:  # no weight decay on BN weights/biases and on biases
        decay = [p for p in net.parameters() if p.dim() > 1]
        rest = [p for p in net.parameters() if p.dim() <= 1]
        params = [{"params": decay, "weight_decay": a.wd}, {"params": rest, "weight_decay": 0.0}]
    opt = torch.optim.SGD(params, lr=a.lr, momentum=a.momentum, nesterov=a.momentum > 0 and not a.no_nesterov)

    g = torch.Generator().manual_seed(seed)
    steps = n // a.batch if a.drop_last else -(-n // a.batch)
    t0 = time.time()
    train_loss = train_correct = seen = 0.0
    for epoch in range(a.epochs):
        net.train()
        perm = dr_perm(seed, epoch, n) if a.order == "dr" else torch.randperm(n, generator=g)
        for k in range(steps):
            idx = perm[k * a.batch:(k + 1) * a.batch]
            b = len(idx)
            x, y = xtr[idx], ytr[idx]
            if a.pad > 0 or a.flip:
                if a.aug_rng == "dr":
                    ox, oy, fl = dr_aug(seed, epoch, k, b, a.pad)
                else:
                    ox = torch.randint(-a.pad, a.pad + 1, (b,), generator=g)
                    oy = torch.randint(-a.pad, a.pad + 1, (b,), generator=g)
                    fl = torch.rand(b, generator=g) < 0.5
                if not a.flip:
                    fl = torch.zeros(b, dtype=torch.bool)
                x = augment(x, ox, oy, fl, a.pad, zero_pad=a.zero_pad)
            lr = lr_at(a, (epoch + k / steps) / a.epochs)
            for grp in opt.param_groups:
                grp["lr"] = lr
            if a.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = net(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            train_loss += loss.item() * b
            train_correct += (out.argmax(1) == y).sum().item()
            seen += b
    seconds = time.time() - t0
    acc, tloss = evaluate(net, xte, yte, a.channels_last)
    if a.save:
        torch.save(net.state_dict(), a.save % seed if "%" in a.save else a.save)
    return {"seed": seed, "test_acc": round(acc, 4), "test_loss": round(tloss, 4),
            "train_loss": round(train_loss / seen, 4), "train_acc": round(train_correct / seen, 4),
            "seconds": round(seconds, 1)}


def eval_weights(a, data):
    """Test accuracy of a deepreduce run's weights.pt in plain PyTorch eval mode."""
    (xtr_u8, _), (xte_u8, yte) = data
    res = json.load(open(os.path.join(a.eval_run, "result.json")))
    mean = torch.tensor(res["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(res["std"]).view(1, -1, 1, 1)
    xte = (xte_u8.float() / 255 - mean) / std
    import deepreduce_model as dm
    net = dm.from_json(a.arch_json)
    net.load_state_dict(torch.load(os.path.join(a.eval_run, "weights.pt")))
    acc, loss = evaluate(net, xte, yte, False)
    return {"run": a.eval_run, "python_eval_acc": round(acc, 4), "python_eval_loss": round(loss, 4),
            "deepreduce_test_acc": res.get("test_acc")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--no-nesterov", action="store_true")
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--schedule", choices=["step", "cosine"], default="step")
    ap.add_argument("--pad", type=int, default=2)
    ap.add_argument("--zero-pad", action="store_true", help="zero instead of reflect padding")
    ap.add_argument("--no-flip", dest="flip", action="store_false")
    ap.add_argument("--arch", choices=["tv", "dr"], default="tv",
                    help="tv: the network written here; dr: python/deepreduce_model.py from --arch-json")
    ap.add_argument("--arch-json", default="/tmp/p0/arch.json")
    ap.add_argument("--conv-init", choices=["kaiming", "torch"], default="kaiming")
    ap.add_argument("--fc-init", choices=["torch", "zero", "normal"], default="torch")
    ap.add_argument("--bn-momentum", type=float, default=0.1)
    ap.add_argument("--bn-eps", type=float, default=1e-5)
    ap.add_argument("--no-wd-bn", dest="wd_bn", action="store_false",
                    help="no weight decay on 1-d parameters (BN weights and biases, FC bias)")
    ap.add_argument("--std", choices=["population", "sample"], default="population")
    ap.add_argument("--drop-last", action="store_true")
    ap.add_argument("--order", choices=["torch", "dr"], default="torch",
                    help="data order: torch.randperm, or deepreduce's loader permutation")
    ap.add_argument("--aug-rng", choices=["torch", "dr"], default="torch",
                    help="crop offsets and flips: torch generator, or deepreduce's per-image hash")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--init-from", help="state_dict to start from instead of the init (%%d: the seed); needs --arch dr")
    ap.add_argument("--save", help="write the final state_dict here (%%d: the seed)")
    ap.add_argument("--eval-run", help="only evaluate this deepreduce run directory's weights.pt (needs --arch-json)")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = load(a.data)
    if a.eval_run:
        print(json.dumps(eval_weights(a, data)), flush=True)
        return
    for s in a.seeds:
        r = run(a, s, data)
        r["tag"] = a.tag
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
