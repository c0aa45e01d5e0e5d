"""Check that every tensor of a quantized GGUF equals gguf-py's quantization of the same tensor
in an F32 GGUF of the same model (llama.cpp's gguf.quants.quantize reproduces ggml's reference
quantizers). Prints one line per type and exits 1 on any difference.

usage: python3 quantized_equals_gguf_py.py F32.gguf QUANTIZED.gguf
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q, GGUFReader
from gguf.quants import quantize

f32 = {t.name: t for t in GGUFReader(sys.argv[1]).tensors}
bad, counts = 0, {}
for t in GGUFReader(sys.argv[2]).tensors:
    src = f32[t.name]
    assert src.tensor_type == Q.F32, f"{t.name}: source is {src.tensor_type.name}, not F32"
    rows = np.asarray(src.data, dtype=np.float32).reshape(-1, int(src.shape[0]))
    if t.tensor_type == Q.F32:
        want = rows.tobytes()
    elif t.tensor_type == Q.F16:
        want = rows.astype(np.float16).tobytes()
    else:
        want = quantize(rows, t.tensor_type).tobytes()
    got = bytes(np.asarray(t.data).tobytes())
    counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    if got != want:
        bad += 1
        print(f"DIFF {t.name} {t.tensor_type.name}")
print(f"{sys.argv[2]}: {sum(counts.values())} tensors {counts}, {bad} differ from gguf-py")
sys.exit(1 if bad else 0)
