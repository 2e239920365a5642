#!/usr/bin/python3
"""PyTorch peer of benchmarks/resnet_step.cpp: the same ResNet20-CIFAR full-precision training
step (SGD, mean cross-entropy) and eval forward, same batch, threads and input size.
Prints one JSON line so benchmarks/run_resnet_step.sh can compare."""
import argparse, json, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class ResNetCifar(nn.Module):
    def __init__(self, depth=20, classes=10, cin=3):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, c = [], 16
        for i, width in enumerate((16, 32, 64)):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(BasicBlock(c, width, stride))
                c = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    rss_idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = ResNetCifar().to(dev)
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
        "impl": "pytorch " + torch.__version__, "device": args.device, "batch": args.batch,
        "threads": args.threads, "train_ms": train_ms,
        "train_images_per_s": args.batch / train_ms * 1e3, "eval_ms": eval_ms,
        "eval_images_per_s": args.batch / eval_ms * 1e3,
        "peak_rss_mb": rss_peak / 1024.0, "peak_rss_over_idle_mb": (rss_peak - rss_idle) / 1024.0,
    }))


if __name__ == "__main__":
    main()
