"""Runs an ONNX file deepreduce exported, op by op with PyTorch's functional
ops (a small evaluator of the subset `deepreduce export` writes, independent
of deepreduce's C++ reader), and compares it with python/deepreduce_model.py's
twin of the run it came from.

Usage: onnx_eval.py MODEL.onnx RUN DEEPREDUCE_BINARY
Prints "max_abs_diff SCALE RELU_ELEMENTS" on the run's normalised random
inputs, RELU_ELEMENTS being the elements of one image that meet a Relu or a
PRelu node (a comparison each: what a framework running the graph as written
pays); exits 1 when the ONNX
checker refuses the file.
"""
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import deepreduce_model as dm  # noqa: E402


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run_graph(model, x):
    """The graph's output on x, and the elements of one image that meet a Relu or PRelu."""
    g = model.graph
    relu_elements = 0
    values = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in g.initializer}
    values[g.input[0].name] = x
    for n in g.node:
        a = attrs(n)
        i = [values[name] for name in n.input if name]
        op = n.op_type
        if op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3]
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, stride=a.get("strides", [1, 1]),
                         padding=pads[:2], groups=a.get("group", 1))
        elif op == "BatchNormalization":
            y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a.get("epsilon", 1e-5))
        elif op == "Relu":
            y = F.relu(i[0])
            relu_elements += i[0][0].numel()
        elif op == "PRelu":  # x >= 0: x, else slope * x (slope broadcast over the batch)
            y = torch.where(i[0] >= 0, i[0], i[0] * i[1])
            relu_elements += i[0][0].numel()
        elif op == "MaxPool":
            y = F.max_pool2d(i[0], a["kernel_shape"], a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])[:2])
        elif op == "GlobalAveragePool":
            y = i[0].mean(dim=(2, 3), keepdim=True)
        elif op == "Flatten":
            y = i[0].flatten(a.get("axis", 1))
        elif op == "Gemm":
            w = i[1].t() if a.get("transB", 0) else i[1]
            y = i[0] @ w + (i[2] if len(i) > 2 else 0)
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "Mul":
            y = i[0] * i[1]
        elif op == "Concat":
            y = torch.cat(i, dim=a["axis"])
        else:
            raise SystemExit("onnx_eval.py: op %s is not in the exported subset" % op)
        values[n.output[0]] = y
    return values[g.output[0].name], relu_elements


def main():
    path, run, binary = sys.argv[1:4]
    model = onnx.load(path)
    onnx.checker.check_model(model)
    masks = os.path.join(run, "masks.pt")
    twin = dm.from_json(dm.count_json(run, binary=binary), masks if os.path.exists(masks) else None)
    twin.load_state_dict(torch.load(os.path.join(run, "weights.pt")))
    twin.eval()
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = torch.randn([4] + dims, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = twin(x)
        got, relu_elements = run_graph(model, x)
    print("%.3g %.3g %d" % (float((got - want).abs().max()), float(want.abs().max()), relu_elements))


if __name__ == "__main__":
    main()
