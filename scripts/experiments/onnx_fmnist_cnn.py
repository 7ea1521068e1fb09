"""Trains the small CNN of deepreduce's ONNX tests (tests/torch/onnx_models.py:
max pooling, a depthwise convolution, residual adds, Dropout, a view()
flatten) in PyTorch on Fashion-MNIST and exports it to ONNX, as a user would
bring their own network (scripts/experiments/onnx_pipeline.sh).

Usage: onnx_fmnist_cnn.py OUT.onnx [FASHION_MNIST_DIR] [EPOCHS]
Prints PyTorch's test accuracy; the normalisation is mean 0.2860, std 0.3530.
"""
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "torch"))
from onnx_models import SmallCNN  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def split(d, prefix):
    with gzip.open(os.path.join(d, prefix + "-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(d, prefix + "-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (torch.from_numpy(images.astype(np.float32) / 255.0) - MEAN) / STD
    return x, torch.from_numpy(labels.astype(np.int64))


def main():
    out = sys.argv[1]
    data = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x, y = split(data, "train")
    tx, ty = split(data, "t10k")
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = order[i:i + 128]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(tx[i:i + 1000]).argmax(1) == ty[i:i + 1000]).sum()) for i in range(0, len(tx), 1000))
        print("epoch %d: PyTorch test accuracy %.4f" % (epoch + 1, correct / len(tx)), flush=True)
    torch.onnx.export(model, tx[:1], out, opset_version=13, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}})
    print("wrote %s (torch %s)" % (out, torch.__version__))


if __name__ == "__main__":
    main()
