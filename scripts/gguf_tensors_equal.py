"""Exit 0 when two GGUF files hold the same tensors (names, types, shapes, bytes), read with
llama.cpp's own gguf-py reader; tensor order and metadata may differ.

usage: python3 gguf_tensors_equal.py A.gguf B.gguf
"""
import sys
from gguf import GGUFReader
a, b = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
ta = {t.name: t for t in a.tensors}; tb = {t.name: t for t in b.tensors}
assert set(ta) == set(tb), (set(ta) ^ set(tb))
bad = 0
for n in sorted(ta):
    x, y = ta[n], tb[n]
    if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape) or bytes(x.data.tobytes()) != bytes(y.data.tobytes()):
        bad += 1
        if bad < 5: print("DIFF", n, x.tensor_type.name, y.tensor_type.name, list(x.shape), list(y.shape))
print(f"{sys.argv[1]} vs {sys.argv[2]}: {len(ta)} tensors, {bad} differ")
sys.exit(1 if bad else 0)
