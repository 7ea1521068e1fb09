"""PyTorch twin of a deepreduce network, built from its layer list.

`deepreduce count SPEC --layers --format json` prints every layer with its
block, its part of the block and its geometry. This module turns that JSON
into an `nn.Module` with the same module paths as the C++ network (so
`load_state_dict(torch.load("weights.pt"))` works), the same convolutions,
BatchNorms and live ReLUs; a ReLU the spec removed is not a module at all.

    import deepreduce_model as dm
    net = dm.from_spec("resnet18:cull=S1:thin", dataset="cifar10")
    net.load_state_dict(torch.load("runs/x/weights.pt"))

A block computes post(body(x) + shortcut(x)) when residual (an empty shortcut
is the identity), else post(body(x)).
"""
import json
import os
import subprocess

import torch
from torch import nn
import torch.nn.functional as F


class _Container(nn.Module):
    """Holds the children of one dotted name prefix ("layer1", "layer1.0")."""

    def forward(self, x):  # pragma: no cover - never called
        raise RuntimeError("container")


class DeepReduceNet(nn.Module):
    def __init__(self, desc):
        super().__init__()
        self.desc = desc
        self.blocks = []  # [(residual, body, shortcut, post)], each a list of (layer, module)
        order, by_block = [], {}
        for layer in desc["layers"]:
            b = layer["block"]
            if b not in by_block:
                by_block[b] = {"residual": layer["residual"], "body": [], "shortcut": [], "post": []}
                order.append(b)
            by_block[b][layer["part"]].append((layer, self._make(layer)))
        for b in order:
            d = by_block[b]
            self.blocks.append((d["residual"], d["body"], d["shortcut"], d["post"]))

    def _parent(self, name):
        parent = self
        parts = name.split(".")
        for p in parts[:-1]:
            if p not in parent._modules:
                parent.add_module(p, _Container())
            parent = parent._modules[p]
        return parent, parts[-1]

    def _make(self, l):
        kind = l["kind"]
        if kind == "conv":
            m = nn.Conv2d(l["in_ch"], l["out_ch"], l["kernel"], stride=l["stride"], padding=l["padding"],
                          groups=l["groups"], bias=l["bias"])
        elif kind == "bn":
            m = nn.BatchNorm2d(int(l["out_shape"].split("x")[0]))
        elif kind == "fc":
            m = nn.Linear(l["in_ch"], l["out_ch"], bias=l["bias"])
        elif kind == "relu":
            m = nn.ReLU(inplace=True) if l["live"] else None
        else:  # maxpool, avgpool, flatten: no state
            m = None
        if m is not None:
            parent, leaf = self._parent(l["name"])
            parent.add_module(leaf, m)
        return m

    @staticmethod
    def _run(steps, x):
        for l, m in steps:
            kind = l["kind"]
            if m is not None:
                x = m(x)
            elif kind == "maxpool":
                x = F.max_pool2d(x, l["kernel"], l["stride"])
            elif kind == "avgpool":
                x = F.adaptive_avg_pool2d(x, 1)
            elif kind == "flatten":
                x = x.flatten(1)
            # a removed ReLU: identity, no work
        return x

    def forward(self, x):
        for residual, body, shortcut, post in self.blocks:
            if residual:
                skip = self._run(shortcut, x) if shortcut else x
                x = self._run(body, x)
                x = x + skip
            else:
                x = self._run(body, x)
            x = self._run(post, x)
        return x


def count_json(spec, dataset=None, binary=None):
    """The layer list of SPEC from `deepreduce count SPEC --layers --format json`."""
    binary = binary or os.environ.get("DEEPREDUCE", "deepreduce")
    cmd = [binary, "count", spec, "--layers", "--format", "json"]
    if dataset:
        cmd += ["--dataset", dataset]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def from_json(desc):
    """A DeepReduceNet from count's JSON (a dict, a JSON string or a file path)."""
    if isinstance(desc, str):
        desc = json.loads(open(desc).read() if os.path.exists(desc) else desc)
    if isinstance(desc, list):
        if len(desc) != 1:
            raise ValueError("expected the JSON of one network, got %d" % len(desc))
        desc = desc[0]
    if "layers" not in desc or (desc["layers"] and "part" not in desc["layers"][0]):
        raise ValueError("need `deepreduce count SPEC --layers --format json` output (with block/part fields)")
    return DeepReduceNet(desc)


def from_spec(spec, dataset=None, binary=None):
    return from_json(count_json(spec, dataset, binary))
