"""PyTorch twin of a deepreduce network, built from its layer list.

`deepreduce count SPEC --layers --format json` prints every layer with its
block, its part of the block and its geometry. This module turns that JSON
into an `nn.Module` with the same module paths as the C++ network (so
`load_state_dict(torch.load("weights.pt"))` works), the same convolutions,
BatchNorms and live ReLUs; a ReLU the spec removed is not a module at all.

    import deepreduce_model as dm
    net = dm.from_spec("resnet18:cull=S1:thin", dataset="cifar10")
    net.load_state_dict(torch.load("runs/x/weights.pt"))

Pixel-level site masks (masks.pt: a dict site name -> uint8 tensor, [C, H, W]
element-wise or [C] channel-wise, src/train/masks.h) say what each element of
a ReLU site computes, as in the C++ network (arch::SiteOp): 0 identity
(y = x), 1 ReLU, 2 polynomial (y = a*x^2 + b*x + c with its channel's
coefficients, the site's parameter "poly" of shape [3, C], in weights.pt as
"<site>.poly"):

    net = dm.from_spec("resnet18:alpha=0.25", dataset="fashion-mnist", masks="runs/x/masks.pt")

A mask of identities only makes the site an identity (no module), one of
ReLUs only a plain ReLU; the mask of any other site is a non-persistent
buffer, so state_dict() names stay those of weights.pt.

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


class MaskedReLU(nn.Module):
    """y = relu(x) where `keep` is set, y = x elsewhere (keep broadcasts over the batch)."""

    def __init__(self, keep):
        super().__init__()
        self.register_buffer("keep", keep, persistent=False)

    def forward(self, x):
        keep = self.keep if x.dim() == 4 else self.keep.flatten()
        return torch.where(keep, F.relu(x), x)


class PolySite(nn.Module):
    """Per element: relu(x) (op 1), x (op 0) or a_c*x^2 + b_c*x + c_c (op 2); `poly` is [3, C]."""

    # The least-squares fit of relu(x) for x ~ N(0, 1), as nn/poly_site.h starts a new site.
    INIT = (0.19947114020071635, 0.5, 0.19947114020071635)

    def __init__(self, ops):
        super().__init__()
        self.register_buffer("ops", ops, persistent=False)
        self.poly = nn.Parameter(torch.tensor(self.INIT).view(3, 1).repeat(1, ops.shape[0]))

    def forward(self, x):
        ops = self.ops if x.dim() == 4 else self.ops.flatten()
        shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
        a, b, c = (self.poly[i].view(shape) for i in range(3))
        return torch.where(ops == 1, F.relu(x), torch.where(ops == 2, (a * x + b) * x + c, x))


def _site_shape(layer):
    return [int(v) for v in layer["out_shape"].split("x")]


def _mask_module(layer, mask):
    """The module of a live ReLU site with a mask: None, nn.ReLU, MaskedReLU or PolySite."""
    c, h, w = _site_shape(layer)
    shape = list(mask.shape)
    if mask.dtype != torch.uint8 or shape not in ([c, h, w], [c]):
        raise ValueError("mask for ReLU site %r has shape %s and dtype %s; the site is %dx%dx%d "
                         "(accepted: uint8 [%d, %d, %d] element-wise or [%d] channel-wise)"
                         % (layer["name"], shape, mask.dtype, c, h, w, c, h, w, c))
    if bool((mask > 2).any()):
        raise ValueError("mask for ReLU site %r holds values other than 0 (identity), 1 (ReLU) and 2 (polynomial)"
                         % layer["name"])
    if bool((mask == 2).any()):
        return PolySite(mask.view(c, h, w) if len(shape) == 3 else mask.view(c, 1, 1))
    keep = mask.bool()
    if not bool(keep.any()):
        return None  # masked out everywhere: an identity, no work
    if bool(keep.all()):
        return nn.ReLU(inplace=True)
    return MaskedReLU(keep.view(c, h, w) if len(shape) == 3 else keep.view(c, 1, 1))


def load_masks(masks):
    """A masks dict from a masks.pt path (or the dict itself)."""
    if masks is None:
        return {}
    if isinstance(masks, str):
        masks = torch.load(masks)
    if not isinstance(masks, dict):
        raise ValueError("masks: expected a dict site name -> uint8 tensor, got %s" % type(masks).__name__)
    return masks


class DeepReduceNet(nn.Module):
    def __init__(self, desc, masks=None):
        super().__init__()
        self.desc = desc
        self.masks = load_masks(masks)
        sites = {l["name"]: l for l in desc["layers"] if l["kind"] == "relu"}
        for name in self.masks:
            if name not in sites:
                raise ValueError("masks: %r is not a ReLU site of %r" % (name, desc.get("spec")))
            if not sites[name]["live"]:
                raise ValueError("masks: ReLU site %r was removed by the spec %r: there is no ReLU left to mask"
                                 % (name, desc.get("spec")))
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
            if not l["live"]:
                m = None
            elif l["name"] in self.masks:
                m = _mask_module(l, self.masks[l["name"]])
            else:
                m = nn.ReLU(inplace=True)
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
                x = F.max_pool2d(x, l["kernel"], l["stride"], l.get("padding", 0))
            elif kind == "avgpool":
                x = F.adaptive_avg_pool2d(x, 1)
            elif kind == "flatten":
                x = x.flatten(1)
            # a removed or masked-out ReLU: identity, no work
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


def from_json(desc, masks=None):
    """A DeepReduceNet from count's JSON (a dict, a JSON string or a file path),
    with the ReLU masks of `masks` (a masks.pt path or its dict) if given."""
    if isinstance(desc, str):
        desc = json.loads(open(desc).read() if os.path.exists(desc) else desc)
    if isinstance(desc, list):
        if len(desc) != 1:
            raise ValueError("expected the JSON of one network, got %d" % len(desc))
        desc = desc[0]
    if "layers" not in desc or (desc["layers"] and "part" not in desc["layers"][0]):
        raise ValueError("need `deepreduce count SPEC --layers --format json` output (with block/part fields)")
    return DeepReduceNet(desc, masks)


def from_spec(spec, dataset=None, binary=None, masks=None):
    return from_json(count_json(spec, dataset, binary), masks)
