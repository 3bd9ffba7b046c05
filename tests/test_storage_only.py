"""On the Triton path only Triton kernels compute: torch may allocate, view/reshape and copy.

Scans every Python file of kernels/ and the backends module (home of TritonBackend) for calls into
torch that compute, and fails on any. Allowed: allocation (empty*, tensor/from_numpy/as_tensor),
views (view, reshape, unsqueeze, permute, contiguous-free metadata), copies (copy_, to, cpu, cuda),
device/dtype queries, and ``torch.cuda`` housekeeping.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCANNED = sorted((ROOT / "kernels").glob("*.py")) + [ROOT / "mocha_triton" / "backends.py"]

ALLOWED_TORCH_ATTRS = {
    "empty", "empty_like", "empty_strided", "tensor", "from_numpy", "as_tensor", "device", "dtype",
    "float32", "float64", "float16", "bfloat16", "int8", "int32", "int64", "uint8", "bool", "Tensor",
    "is_tensor", "cuda", "get_default_dtype", "Size", "Generator", "inference_mode", "no_grad",
}
ALLOWED_TENSOR_METHODS = {
    "view", "reshape", "unsqueeze", "squeeze", "flatten", "permute", "transpose", "expand", "as_strided",
    "copy_", "to", "cpu", "cuda", "numpy", "item", "tolist", "data_ptr", "stride", "size", "dim",
    "numel", "element_size", "is_contiguous", "contiguous", "storage_offset", "untyped_storage", "detach",
    "new_empty", "is_cuda", "get_device", "t",
}
# Tensor methods that compute; any call of these on anything in the scanned files fails.
COMPUTE_METHODS = {
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "matmul", "mm", "bmm", "addmm", "sum",
    "mean", "max", "min", "amax", "amin", "argmax", "argmin", "exp", "exp_", "log", "log_", "sqrt",
    "clamp", "clamp_", "relu", "relu_", "sigmoid", "tanh", "softmax", "log_softmax", "zero_", "fill_",
    "normal_", "uniform_", "bernoulli_", "random_", "pow", "abs", "neg", "sign", "where", "masked_fill",
    "masked_fill_", "scatter_", "scatter_add_", "index_add_", "gather", "cumsum", "sort", "topk", "norm",
    "flip", "roll", "einsum", "conv2d", "lerp", "addcmul_", "addcdiv_", "square", "rsqrt",
}


def _torch_calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            chain = []
            f = node.func
            while isinstance(f, ast.Attribute):
                chain.append(f.attr)
                f = f.value
            if isinstance(f, ast.Name):
                chain.append(f.id)
            yield node, list(reversed(chain))


def offences(source: str) -> list[str]:
    found = []
    tree = ast.parse(source)
    for node, chain in _torch_calls(tree):
        if chain[0] in ("torch", "F") and len(chain) >= 2:
            if chain[0] == "F" or chain[1] not in ALLOWED_TORCH_ATTRS:
                found.append(f"line {node.lineno}: {'.'.join(chain)}")
        elif chain[-1] in COMPUTE_METHODS and chain[0] not in ("tl", "triton", "np", "math", "os", "re"):
            found.append(f"line {node.lineno}: .{chain[-1]}()")
    for node in ast.walk(tree):  # operators on tensors are compute too; kernels never need them on host
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            found.append(f"line {node.lineno}: @ operator")
    return found


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: p.name)
def test_no_torch_compute(path):
    bad = offences(path.read_text())
    assert not bad, f"{path.relative_to(ROOT)} computes with torch:\n" + "\n".join(bad)


def test_scanner_catches_compute():
    src = "import torch\ndef f(x, y):\n    torch.matmul(x, y)\n    y.zero_()\n    z = x @ y\n    x.sum()\n"
    assert len(offences(src)) == 4
    ok = "import torch\ndef f(x):\n    y = torch.empty_like(x)\n    y.copy_(x.view(-1))\n    return y.to('cpu')\n"
    assert offences(ok) == []


def test_there_are_files_to_scan():
    assert len(SCANNED) >= 3
