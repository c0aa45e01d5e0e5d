"""Write a GGUF file with llama.cpp's gguf.GGUFWriter and the JSON (see gguf_json.py) of what
was written, built from the inputs (not by reading the file back).

usage: python3 gguf_write.py OUT.gguf OUT.json
"""
import json
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q, GGUFValueType as T, GGUFWriter

from gguf_json import TYPE_NAMES, sha256

ALIGNMENT = 64


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def v(t, value):
    return {"type": TYPE_NAMES[t], "value": value}


def arr(elem, items):
    return {"type": "array", "elem": TYPE_NAMES[elem], "value": items}


def main(path, json_path):
    w = GGUFWriter(path, "llama")  # adds general.architecture = "llama" first
    kv = [{"key": "general.architecture", "value": v(T.STRING, "llama")}]

    def add(key, value, vtype, sub_type=None, expected=None):
        w.add_key_value(key, value, vtype, sub_type=sub_type)
        kv.append({"key": key, "value": expected})

    w.add_custom_alignment(ALIGNMENT)
    kv.append({"key": "general.alignment", "value": v(T.UINT32, ALIGNMENT)})
    add("general.name", "py-written ünïcode ✓", T.STRING, expected=v(T.STRING, "py-written ünïcode ✓"))
    add("t.u8", 255, T.UINT8, expected=v(T.UINT8, 255))
    add("t.i8", -128, T.INT8, expected=v(T.INT8, -128))
    add("t.u16", 65535, T.UINT16, expected=v(T.UINT16, 65535))
    add("t.i16", -32768, T.INT16, expected=v(T.INT16, -32768))
    add("llama.context_length", 4096, T.UINT32, expected=v(T.UINT32, 4096))
    add("t.i32", -7, T.INT32, expected=v(T.INT32, -7))
    add("llama.attention.layer_norm_rms_epsilon", 1e-5, T.FLOAT32,
        expected=v(T.FLOAT32, f32_bits(1e-5)))
    add("t.bool", True, T.BOOL, expected=v(T.BOOL, True))
    add("t.u64", 2**64 - 1, T.UINT64, expected=v(T.UINT64, 2**64 - 1))
    add("t.i64", -2**63, T.INT64, expected=v(T.INT64, -2**63))
    add("t.f64", -0.1, T.FLOAT64, expected=v(T.FLOAT64, f64_bits(-0.1)))
    tokens = ["<unk>", "<s>", "</s>", "▁the", "\n", "<0x0A>", "\"quote\"\\"]
    add("tokenizer.ggml.tokens", tokens, T.ARRAY, T.STRING, arr(T.STRING, tokens))
    scores = [0.0, -1.5, 3.25, -1000.0, 1e-3, 0.5, 2.0]
    add("tokenizer.ggml.scores", scores, T.ARRAY, T.FLOAT32,
        arr(T.FLOAT32, [f32_bits(s) for s in scores]))
    types = [2, 3, 3, 1, 6, 6, 1]
    add("tokenizer.ggml.token_type", types, T.ARRAY, T.INT32, arr(T.INT32, types))
    for t, items in [(T.UINT8, [0, 255]), (T.INT8, [-1, 1]), (T.UINT16, [7]), (T.INT16, [-9]),
                     (T.UINT32, [1, 2, 3]), (T.UINT64, [2**63]), (T.INT64, [-5]),
                     (T.BOOL, [True, False, True])]:
        add(f"t.arr.{TYPE_NAMES[t]}", items, T.ARRAY, t, arr(t, items))
    add("t.arr.f64", [1.5, -2.0], T.ARRAY, T.FLOAT64, arr(T.FLOAT64, [f64_bits(1.5), f64_bits(-2.0)]))
    # Nested arrays: inner element types are inferred by the writer (int -> i32, str -> string).
    nested = [[1, 2], [3], ["a", "b"]]
    add("t.nested", nested, T.ARRAY, None,
        arr(T.ARRAY, [arr(T.INT32, [1, 2]), arr(T.INT32, [3]), arr(T.STRING, ["a", "b"])]))
    add("tokenizer.chat_template", "{% for m in messages %}{{ m }}{% endfor %}", T.STRING,
        expected=v(T.STRING, "{% for m in messages %}{{ m }}{% endfor %}"))

    rng = np.random.default_rng(1234)
    tensors = []  # (name, array, raw_dtype, dims innermost first, ggml type id)
    f32 = rng.standard_normal((3, 64)).astype(np.float32)
    tensors.append(("token_embd.weight", f32, None, [64, 3], int(Q.F32)))
    f16 = rng.standard_normal((2, 32)).astype(np.float16)
    tensors.append(("blk.0.attn_q.weight", f16, None, [32, 2], int(Q.F16)))
    i32 = np.arange(5, dtype=np.int32)
    tensors.append(("blk.0.ids", i32, None, [5], int(Q.I32)))
    for name, q, rows, cols in [("blk.0.ffn_up.weight", Q.Q4_0, 2, 64),
                                ("blk.0.ffn_down.weight", Q.Q8_0, 3, 32),
                                ("output.weight", Q.Q6_K, 2, 256),
                                ("blk.0.attn_k.weight", Q.Q4_K, 1, 512)]:
        block, size = {Q.Q4_0: (32, 18), Q.Q8_0: (32, 34), Q.Q6_K: (256, 210),
                       Q.Q4_K: (256, 144)}[q]
        raw = rng.integers(0, 256, size=(rows, cols // block * size), dtype=np.uint8)
        tensors.append((name, raw, q, [cols, rows], int(q)))

    expected_tensors = []
    offset = 0
    for name, data, raw_dtype, dims, type_id in tensors:
        w.add_tensor(name, data, raw_dtype=raw_dtype)
        blob = data.tobytes()
        expected_tensors.append({"name": name, "dims": dims, "type": type_id, "offset": offset,
                                 "n_bytes": len(blob), "sha256": sha256(blob)})
        offset += (len(blob) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    doc = {"version": 3, "alignment": ALIGNMENT, "kv": kv, "tensors": expected_tensors}
    with open(json_path, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
