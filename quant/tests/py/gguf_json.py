"""Shared JSON form of a GGUF file for cinder's interop tests.

{"version": 3, "alignment": 32,
 "kv": [{"key": k, "value": V}, ...]                    # file order
 "tensors": [{"name", "dims" (innermost first), "type" (ggml id), "offset" (relative to the
              data section), "n_bytes", "sha256"}, ...]}  # file order
V = {"type": "u32", "value": 7} | {"type": "string", "value": "..."} | {"type": "bool", ...}
  | {"type": "f32", "value": <IEEE bits as integer>} (f64 likewise)
  | {"type": "array", "elem": "<type>", "value": [items]} where items are plain numbers (float
    bits), bools, strings or nested V arrays.
Tensor data may be given as "data_hex" instead; normalize() turns it into n_bytes + sha256.
"""
import hashlib

TYPE_NAMES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
              "u64", "i64", "f64"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalize(doc):
    for t in doc.get("tensors", []):
        if "data_hex" in t:
            data = bytes.fromhex(t.pop("data_hex"))
            t["n_bytes"] = len(data)
            t["sha256"] = sha256(data)
    return doc
