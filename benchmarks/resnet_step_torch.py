#!/usr/bin/python3
"""PyTorch peer of benchmarks/resnet_step.cpp: the same model's training step (SGD, mean
cross-entropy) and eval forward, same batch, threads and input size; --mode ste quantizes every
conv and linear weight with 1-bit dorefa and the straight-through estimator, as mq's STE step.
Prints one JSON line so benchmarks/run_resnet_step.sh and run_zoo_step.sh can compare."""
import argparse, json, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class DorefaSte(torch.autograd.Function):
    """1-bit dorefa forward, STE backward (docs/metaquant.md §2)."""
    @staticmethod
    def forward(ctx, w):
        t = torch.tanh(w)
        m = t.abs().max()
        ctx.save_for_backward(t, m)
        wt = t / (2 * m) + 0.5
        return 2 * torch.round(wt) - 1

    @staticmethod
    def backward(ctx, g):
        t, m = ctx.saved_tensors
        return g * (1 - t * t) / m


QUANTIZE = False


class QConv(nn.Conv2d):
    def forward(self, x):
        w = DorefaSte.apply(self.weight) if QUANTIZE else self.weight
        return F.conv2d(x, w, self.bias, self.stride, self.padding, 1, self.groups)


class QLinear(nn.Linear):
    def forward(self, x):
        w = DorefaSte.apply(self.weight) if QUANTIZE else self.weight
        return F.linear(x, w, self.bias)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = QConv(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = QConv(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(QConv(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = QConv(cin, planes, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = QConv(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = QConv(planes, planes * 4, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(QConv(cin, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class ResNetCifar(nn.Module):
    def __init__(self, depth=20, classes=10, cin=3):
        super().__init__()
        bottleneck = depth == 164
        n = (depth - 2) // (9 if bottleneck else 6)
        self.conv1 = QConv(cin, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, c = [], 16
        for i, width in enumerate((16, 32, 64)):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(Bottleneck(c, width, stride) if bottleneck
                              else BasicBlock(c, width, stride))
                c = width * (4 if bottleneck else 1)
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = QLinear(c, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class VggSmall(nn.Module):
    def __init__(self, classes=10, cin=3):
        super().__init__()
        widths, c = (128, 128, 256, 256, 512, 512), cin
        for i, w in enumerate(widths):
            setattr(self, f"conv{i}", QConv(c, w, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(w))
            c = w
        self.fc = QLinear(512 * 4 * 4, classes)

    def forward(self, x):
        for i in range(6):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2, 2)
        return self.fc(x.flatten(1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, expansion, stride):
        super().__init__()
        planes = expansion * cin
        self.stride = stride
        self.conv1 = QConv(cin, planes, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = QConv(planes, planes, 3, stride, 1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = QConv(planes, cout, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(QConv(cin, cout, 1, 1, 0, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu6(self.bn1(self.conv1(x)))
        out = F.relu6(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride != 1:
            return out
        return out + (x if self.shortcut is None else self.shortcut(x))


class MobileNetV2(nn.Module):
    STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, classes=10, cin=3):
        super().__init__()
        self.conv1 = QConv(cin, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks, c = [], 32
        for e, out, n, s in self.STAGES:
            for b in range(n):
                blocks.append(InvertedResidual(c, out, e, s if b == 0 else 1))
                c = out
        self.layers = nn.Sequential(*blocks)
        self.conv2 = QConv(320, 1280, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = QLinear(1280, classes)

    def forward(self, x):
        x = F.relu6(self.bn1(self.conv1(x)))
        x = F.relu6(self.bn2(self.conv2(self.layers(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build(name):
    if name.startswith("resnet"):
        return ResNetCifar(int(name[6:]))
    return {"vgg-small": VggSmall, "mobilenetv2": MobileNetV2}[name]()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--mode", default="fp", choices=("fp", "ste"))
    args = ap.parse_args()
    global QUANTIZE
    QUANTIZE = args.mode == "ste"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    rss_idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = build(args.model).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def train_step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    model.train()
    for _ in range(args.warmup):
        train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    sync()
    train_ms = (time.perf_counter() - t0) / args.steps * 1e3

    model.eval()
    with torch.no_grad():
        for _ in range(args.warmup):
            model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            model(x)
        sync()
    eval_ms = (time.perf_counter() - t0) / args.steps * 1e3
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "impl": "pytorch " + torch.__version__, "model": args.model, "mode": args.mode,
        "device": args.device, "batch": args.batch,
        "threads": args.threads, "train_ms": train_ms,
        "train_images_per_s": args.batch / train_ms * 1e3, "eval_ms": eval_ms,
        "eval_images_per_s": args.batch / eval_ms * 1e3,
        "peak_rss_mb": rss_peak / 1024.0, "peak_rss_over_idle_mb": (rss_peak - rss_idle) / 1024.0,
    }))


if __name__ == "__main__":
    main()
