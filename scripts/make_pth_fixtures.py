#!/usr/bin/python3
"""Writes the PyTorch checkpoint fixtures of tests/test_pth.cpp into tests/data/pth/.

Run with Debian's /usr/bin/python3 (PyTorch 1.13): `/usr/bin/python3 scripts/make_pth_fixtures.py`.
Deterministic (fixed seeds). Every `<name>.pth` that loads has its expected tensors beside it as
`<name>/<key>.npy` (keys as mq::load_pth returns them: `module.` stripped, f64/f16 as f32).

  tiny_zip.pth, tiny_legacy.pth      small conv/bn/fc model state dict (with _metadata)
  tiny_deflated.pth                  tiny_zip.pth re-zipped with deflate-compressed entries
  tiny_dataparallel.pth              the same keys behind `module.` (zip)
  views_zip.pth, views_legacy.pth    strided, offset, shared-storage, f64/f16/i64/0-dim/empty
  extras_zip.pth, extras_legacy.pth  pickle protocol 4, bfloat16, half edge values, a Parameter
  wrapped_model_zip.pth              extras under 'model', beside 'epoch' and optimizer state
  resnet20_zip.pth                   ResNet20-CIFAR state dict (zip)
  resnet20_legacy_wrapped.pth        {'state_dict': ..., 'epoch': ..., 'best_prec1': ...} (legacy)
  resnet20_forward/                  input.npy and the eval-mode logits.npy of that model
  bool_zip.pth                       a bool tensor (an unsupported dtype)
  malicious_zip.pth, malicious_legacy.pth  an object whose unpickling calls os.system
  truncated_zip.pth, truncated_legacy.pth  tiny files cut short
  missing_storage_zip.pth            tiny_zip.pth without one archive/data/<key> entry
  missing_storage_legacy.pth         tiny_legacy.pth without its last storage (key and bytes)
"""
import collections
import io
import os
import pickle
import shutil
import struct
import sys
import zipfile

import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "pth")


# ResNet20 for CIFAR with the state_dict names of docs/metaquant.md §2: the same definition
# the PyTorch side of the whole-step benchmark uses.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
from resnet_step_torch import ResNetCifar  # noqa: E402


def randomize_bn(model, gen):
    """Non-trivial BN statistics, so the test sees more than zeros and ones."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen))
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen))
            m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))


# ---- writers --------------------------------------------------------------------------------
def save(obj, name, legacy):
    path = os.path.join(OUT, name + ".pth")
    with open(path, "wb") as f:
        torch.save(obj, f, _use_new_zipfile_serialization=not legacy)
    return path


def expect(state, name):
    """<name>/<key>.npy for every tensor, as the C++ loader returns it."""
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for key, t in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        a = None if t.dtype == torch.bfloat16 else t.detach().contiguous().numpy()
        if t.dtype == torch.bfloat16:
            a = t.detach().float().contiguous().numpy()
        if a.dtype in (np.float64, np.float16):
            a = a.astype(np.float32)
        np.save(os.path.join(d, key + ".npy"), a)


def rezip(src, dst, compression, skip=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            if skip is not None and info.filename.endswith(skip):
                continue
            zout.writestr(info.filename, zin.read(info.filename))


def drop_last_legacy_storage(src, dst):
    """A legacy file whose storage-key list lacks its last key, and whose records (8-byte
    element count + bytes) lack that storage, while the pickle still references it."""
    elem = {}

    class Reader(pickle.Unpickler):
        def persistent_load(self, pid):
            _, storage_type, key, _, _, _ = pid
            elem[key] = torch.tensor([], dtype=storage_type.dtype).element_size()

        def find_class(self, mod, name):
            if name.endswith("Storage"):
                return getattr(torch, name)
            if (mod, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            return lambda *a, **k: None

    data = open(src, "rb").read()
    f = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, sys info
        pickle.load(f)
    Reader(f).load()
    head = data[: f.tell()]
    keys = pickle.load(f)
    records = b""
    for key in keys[:-1]:
        count = struct.unpack("<q", f.read(8))[0]
        records += struct.pack("<q", count) + f.read(count * elem[key])
    with open(dst, "wb") as out:
        out.write(head + pickle.dumps(keys[:-1], protocol=2) + records)


class Pwn:
    """Unpickling this calls os.system: a loader must refuse it without running anything."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/mq_pth_pwned",))


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)

    # tiny model: conv (with bias) -> bn -> linear, in a Sequential so names are "0.weight" ...
    tiny = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    randomize_bn(tiny, gen)
    sd = tiny.state_dict()
    save(sd, "tiny_zip", legacy=False)
    save(sd, "tiny_legacy", legacy=True)
    expect(sd, "tiny")
    rezip(os.path.join(OUT, "tiny_zip.pth"), os.path.join(OUT, "tiny_deflated.pth"),
          zipfile.ZIP_DEFLATED)
    dp = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    save(dp, "tiny_dataparallel", legacy=False)

    # views: what a hand-made dict of tensors may hold
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7.0
    views = collections.OrderedDict()
    views["transposed"] = base.t()                 # strides (1, 4)
    views["row_slice"] = base[1:]                  # storage offset 4, shares storage
    views["column"] = base[:, 2]                   # offset 2, stride 4
    views["base"] = base
    views["f64"] = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    views["f16"] = torch.randn(5, generator=gen).half()
    views["i64"] = torch.tensor([[-3, 0], [7, 1 << 40]], dtype=torch.int64)
    views["scalar"] = torch.tensor(2.5)
    views["empty"] = torch.zeros(0, 3)
    views["expanded"] = torch.tensor([1.0, 2.0]).expand(3, 2)  # stride 0
    save(views, "views_zip", legacy=False)
    save(views, "views_legacy", legacy=True)
    expect(views, "views")

    # pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL), bfloat16, half edge values, a Parameter
    extras = collections.OrderedDict()
    extras["weight"] = nn.Parameter(torch.randn(3, 2, generator=gen))
    extras["bf16"] = torch.randn(4, generator=gen).bfloat16()
    extras["half_edges"] = torch.tensor([6e-8, -1e-5, 65504.0, float("inf"), -0.0]).half()
    extras["bias"] = torch.randn(3, generator=gen)
    for legacy in (False, True):
        path = os.path.join(OUT, "extras_%s.pth" % ("legacy" if legacy else "zip"))
        torch.save(extras, path, pickle_protocol=4, _use_new_zipfile_serialization=not legacy)
    expect(extras, "extras")
    # a training checkpoint: the state dict under 'model' beside optimizer state
    save({"model": extras, "epoch": 3,
          "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9,
                                                       "nesterov": False, "params": [0, 1],
                                                       "betas": (0.9, 0.999), "x": None}]}},
         "wrapped_model_zip", legacy=False)

    # ResNet20-CIFAR
    net = ResNetCifar(20, 10)
    randomize_bn(net, gen)
    rsd = net.state_dict()
    save(rsd, "resnet20_zip", legacy=False)
    save({"state_dict": rsd, "epoch": 160, "best_prec1": 91.73, "arch": "resnet20"},
         "resnet20_legacy_wrapped", legacy=True)
    expect(rsd, "resnet20")
    # an eval-mode forward pass, so the test can run the imported weights end to end
    d = os.path.join(OUT, "resnet20_forward")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    x = torch.randn(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        logits = net.eval()(x)
    np.save(os.path.join(d, "input.npy"), x.numpy())
    np.save(os.path.join(d, "logits.npy"), logits.numpy())

    # rejections
    save({"mask": torch.tensor([True, False])}, "bool_zip", legacy=False)
    save({"x": Pwn()}, "malicious_zip", legacy=False)
    save({"x": Pwn()}, "malicious_legacy", legacy=True)
    for fmt in ("zip", "legacy"):
        data = open(os.path.join(OUT, "tiny_%s.pth" % fmt), "rb").read()
        with open(os.path.join(OUT, "truncated_%s.pth" % fmt), "wb") as f:
            f.write(data[: len(data) * 2 // 3])
    rezip(os.path.join(OUT, "tiny_zip.pth"), os.path.join(OUT, "missing_storage_zip.pth"),
          zipfile.ZIP_STORED, skip="/data/0")
    drop_last_legacy_storage(os.path.join(OUT, "tiny_legacy.pth"),
                             os.path.join(OUT, "missing_storage_legacy.pth"))
    print("wrote fixtures into", os.path.normpath(OUT), "with torch", torch.__version__)


if __name__ == "__main__":
    sys.exit(main())
