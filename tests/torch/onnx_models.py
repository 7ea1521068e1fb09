"""Models for deepreduce's ONNX tests, exported by PyTorch (torch.onnx.export).

Usage: onnx_models.py OUT_DIR [FASHION_MNIST_DIR]

Writes into OUT_DIR:
  <name>.onnx           the models (below)
  <name>.inputs.f32     8 input images (N x C x H x W float32, raw)
  <name>.logits.f32     PyTorch's logits on them (N x classes float32, raw)
  expected.json         per model what PyTorch's forward hooks count (ReLU
                        elements, multiply-accumulates of Conv2d and Linear,
                        parameters) and, for the Fashion-MNIST model, the
                        correct predictions on the whole test split
  bad_<what>.onnx       damaged and hostile files, with the words each
                        refusal must contain in expected.json["bad"]

Models: torchvision's ResNet18 at 32x32 with BatchNorm folded into the
convolutions (the exporter's default) and kept (TrainingMode.PRESERVE), at
224x224, and a small CNN on Fashion-MNIST's 1x28x28 images with max pooling,
a depthwise convolution, residual adds, Dropout, a view() flatten and a
two-layer classifier.
"""
import gzip
import json
import os
import sys

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper
import torch
import torch.nn as nn
import torchvision


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.dw_bn = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.act = nn.ReLU()
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.down_relu = nn.ReLU()
        self.skip = nn.Conv2d(8, 16, 1, stride=2)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.drop = nn.Dropout(0.2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc_relu = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.stem(x))                      # 8x14x14
        x = self.act(x + self.pw(torch.relu(self.dw_bn(self.dw(x)))))  # residual, inverted order
        x = self.down_relu(self.down(x)) + self.skip(x)  # 16x7x7, no ReLU after the add
        x = self.pool2(x)                                # 16x4x4
        x = self.drop(x.view(x.size(0), -1))
        return self.fc2(self.fc_relu(self.fc1(x)))


def hook_counts(model, x):
    """ReLU elements, MACs and params as forward hooks see them."""
    counts = {"relus": 0, "flops": 0}

    def on_relu(m, i, o):
        counts["relus"] += o[0].numel()

    def on_conv(m, i, o):
        counts["flops"] += o[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def on_linear(m, i, o):
        counts["flops"] += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            hooks.append(m.register_forward_hook(on_relu))
        elif isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(on_linear))
    # torch.relu in SmallCNN.forward is no module: count it by hand below.
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    counts["params"] = sum(p.numel() for p in model.parameters())
    return counts


def randomize_bn(model, g):
    # Non-trivial running statistics, so folding and the epsilon matter.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def fashion_mnist_test(d):
    with gzip.open(os.path.join(d, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(d, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))


def save(out, name, model, x, expected, **export):
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(model, x[:1], path, opset_version=13, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}}, **export)
    with torch.no_grad():
        logits = model(x)
    x.numpy().astype(np.float32).tofile(os.path.join(out, name + ".inputs.f32"))
    logits.numpy().astype(np.float32).tofile(os.path.join(out, name + ".logits.f32"))
    expected[name] = hook_counts(model, x[:1])
    expected[name]["input"] = "x".join(str(s) for s in x.shape[1:])
    expected[name]["classes"] = int(logits.shape[1])
    return path


def bad_files(out, good_path):
    """Damaged and hostile files, each with words its refusal must contain."""
    bad = {}
    data = open(good_path, "rb").read()
    for frac in (0.01, 0.5, 0.99):
        name = "bad_truncated_%d.onnx" % int(frac * 100)
        open(os.path.join(out, name), "wb").write(data[: int(len(data) * frac)])
        bad[name] = ["not an ONNX model"]
    open(os.path.join(out, "bad_text.onnx"), "w").write("this is not a protobuf\n" * 20)
    bad["bad_text.onnx"] = ["not an ONNX model"]
    open(os.path.join(out, "bad_empty.onnx"), "wb").write(b"")
    bad["bad_empty.onnx"] = ["empty file"]

    def write(name, model, words):
        open(os.path.join(out, name), "wb").write(model.SerializeToString())
        bad[name] = words

    good = onnx.load(good_path)
    # A cycle: the first node also reads the last node's output.
    m = onnx.load(good_path)
    first = m.graph.node[[n.op_type for n in m.graph.node].index("Conv")]
    first.input[0] = m.graph.node[-1].output[0]
    write("bad_cycle.onnx", m, ["checker"])
    # A missing initializer.
    m = onnx.load(good_path)
    del m.graph.initializer[:]
    write("bad_missing_initializer.onnx", m, ["checker"])
    # A weight of the wrong type (int64 values where floats belong).
    m = onnx.load(good_path)
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    init = next(i for i in m.graph.initializer if i.name == conv.input[1])
    n = int(np.prod(init.dims))
    init.CopyFrom(onnx.numpy_helper.from_array(np.zeros(list(init.dims), np.int64), init.name))
    write("bad_int_weight.onnx", m, ["INT64", "not FLOAT"])
    # A weight whose dims claim far more values than it holds (no huge allocation).
    m = onnx.load(good_path)
    init = next(i for i in m.graph.initializer if i.name == conv.input[1])
    del init.dims[:]
    init.dims.extend([1 << 20, 1, 3, 3])
    write("bad_huge_weight.onnx", m, ["weight"])
    # An op outside the subset (Sigmoid instead of the first Relu).
    m = onnx.load(good_path)
    next(n for n in m.graph.node if n.op_type == "Relu").op_type = "Sigmoid"
    write("bad_sigmoid.onnx", m, ["Sigmoid", "is not accepted", "Conv, BatchNormalization"])
    # A concatenation of two branches (DenseNet-like).
    x = oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 4, 4])
    y = oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    w = onnx.numpy_helper.from_array(np.ones((4, 16), np.float32), "w")
    nodes = [oh.make_node("Relu", ["x"], ["a"], name="r1"), oh.make_node("Concat", ["x", "a"], ["c"], axis=1, name="cat"),
             oh.make_node("GlobalAveragePool", ["c"], ["p"], name="gap"),
             oh.make_node("Flatten", ["p"], ["f"], name="flat"),
             oh.make_node("Gemm", ["f", "w"], ["y"], name="fc", transB=1)]
    write("bad_concat.onnx", oh.make_model(oh.make_graph(nodes, "g", [x], [y], [w]),
                                           opset_imports=[oh.make_opsetid("", 13)]), ["cat", "Concat"])
    # A leaky ReLU in the Mul/Add form of a site: 0.9*relu(x) + 0.1*x is not
    # a ReLU, an identity or a polynomial per element.
    m = onnx.load(good_path)
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    x_in, y_out = relu.input[0], relu.output[0]
    m.graph.initializer.extend([onnx.numpy_helper.from_array(np.array(0.9, np.float32), "leak_r"),
                                onnx.numpy_helper.from_array(np.array(0.1, np.float32), "leak_b")])
    at = list(m.graph.node).index(relu)
    form = [oh.make_node("Relu", [x_in], ["leak_0"], name="/leaky/Relu"),
            oh.make_node("Mul", ["leak_0", "leak_r"], ["leak_1"], name="/leaky/Mul"),
            oh.make_node("Mul", [x_in, "leak_b"], ["leak_2"], name="/leaky/Mul_1"),
            oh.make_node("Add", ["leak_1", "leak_2"], [y_out], name="/leaky/Add")]
    del m.graph.node[at]
    for k, node in enumerate(form):
        m.graph.node.insert(at + k, node)
    write("bad_leaky_site.onnx", m, ["leaky", "computes", "accepted per element"])
    # A node of the domain deepreduce uses inside its reader.
    m = onnx.load(good_path)
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    relu.domain, relu.op_type = "deepreduce.site", "Site"
    m.opset_import.extend([oh.make_opsetid("deepreduce.site", 1)])
    write("bad_site_domain.onnx", m, ["internal domain"])
    # An input without a fixed image size.
    m = onnx.load(good_path)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    write("bad_dynamic_input.onnx", m, ["no fixed size"])
    # A weight kept in an external file.
    m = onnx.load(good_path)
    init = next(i for i in m.graph.initializer if i.name == conv.input[1])
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    e = init.external_data.add()
    e.key, e.value = "location", "weights.bin"
    write("bad_external.onnx", m, ["external"])
    return bad


def main():
    out = sys.argv[1]
    fmnist = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    expected = {}

    r18 = torchvision.models.resnet18(num_classes=10).eval()
    randomize_bn(r18, g)
    x32 = torch.randn(8, 3, 32, 32, generator=g)
    save(out, "resnet18_32_folded", r18, x32, expected)
    save(out, "resnet18_32_bn", r18, x32, expected, training=torch.onnx.TrainingMode.PRESERVE,
         do_constant_folding=False)
    save(out, "resnet18_224", r18, torch.randn(2, 3, 224, 224, generator=g), expected)

    cnn = SmallCNN().eval()
    randomize_bn(cnn, g)
    have_fmnist = os.path.exists(os.path.join(fmnist, "t10k-images-idx3-ubyte.gz"))
    if have_fmnist:
        images, labels = fashion_mnist_test(fmnist)
        norm = (images - 0.2860) / 0.3530
        x = norm[:8].contiguous()
    else:
        x = torch.randn(8, 1, 28, 28, generator=g)
    save(out, "small_cnn", cnn, x, expected)
    expected["small_cnn"]["relus"] += 8 * 14 * 14  # the torch.relu of forward(), no module
    if have_fmnist:
        with torch.no_grad():
            expected["small_cnn"]["fashion_mnist_correct"] = int((cnn(norm).argmax(1) == labels).sum())
            expected["small_cnn"]["fashion_mnist_images"] = int(labels.numel())

    expected["bad"] = bad_files(out, os.path.join(out, "small_cnn.onnx"))
    json.dump(expected, open(os.path.join(out, "expected.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
