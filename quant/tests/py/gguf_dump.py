"""Dump a GGUF file as JSON (see gguf_json.py) using llama.cpp's gguf.GGUFReader.

usage: python3 gguf_dump.py FILE.gguf OUT.json
"""
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType

from gguf_json import TYPE_NAMES, sha256


def scalar(part, vtype):
    """The JSON item for one scalar part (a 1-element numpy array)."""
    if vtype == GGUFValueType.FLOAT32:
        return int(part.view(np.uint32)[0])
    if vtype == GGUFValueType.FLOAT64:
        return int(part.view(np.uint64)[0])
    if vtype == GGUFValueType.BOOL:
        return bool(part[0])
    return int(part[0])


def walk(parts, i, vtype):
    """Decode the value of type vtype starting at parts[i]; return (item, next index).

    Items are plain (number, bool, string) except arrays, which are full V objects. The reader
    flattens nested arrays in contents(), so this walks the raw parts instead.
    """
    if vtype == GGUFValueType.STRING:
        return bytes(parts[i + 1]).decode("utf-8"), i + 2
    if vtype == GGUFValueType.ARRAY:
        elem = GGUFValueType(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            item, i = walk(parts, i, elem)
            items.append(item)
        return {"type": "array", "elem": TYPE_NAMES[elem], "value": items}, i
    return scalar(parts[i], vtype), i + 1


def dump(path):
    r = GGUFReader(path)
    fields = list(r.fields.values())
    version = int(fields[0].parts[0][0])
    kv = []
    for f in fields[3:]:  # GGUF.version, GGUF.tensor_count, GGUF.kv_count come first
        vtype = GGUFValueType(int(f.parts[2][0]))
        item, end = walk(f.parts, 3, vtype)
        assert end == len(f.parts), f"{f.name}: {end} of {len(f.parts)} parts decoded"
        value = item if vtype == GGUFValueType.ARRAY else {"type": TYPE_NAMES[vtype], "value": item}
        kv.append({"key": f.name, "value": value})
    tensors = []
    for t in r.tensors:
        data = bytes(np.ascontiguousarray(t.data).view(np.uint8).tobytes())
        assert len(data) == int(t.n_bytes), t.name
        tensors.append({
            "name": t.name,
            "dims": [int(d) for d in t.shape],
            "type": int(t.tensor_type),
            "offset": int(t.field.parts[5][0]),
            "n_bytes": int(t.n_bytes),
            "sha256": sha256(data),
        })
    return {"version": version, "alignment": int(r.alignment), "kv": kv, "tensors": tensors}


if __name__ == "__main__":
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(dump(sys.argv[1]), out, indent=1)
