"""Print the metadata differences between two GGUF files, read with llama.cpp's gguf-py:
keys only in one file, and keys whose type or value differs. Exit 1 if any key outside
--ignore differs.

usage: python3 gguf_metadata_diff.py A.gguf B.gguf [--ignore key1,key2,...]
"""
import sys

from gguf import GGUFReader, GGUFValueType


def fields(path):
    out = {}
    for name, f in GGUFReader(path).fields.items():
        if name.startswith("GGUF."):
            continue
        vt = f.types[0] if f.types else None
        if vt == GGUFValueType.ARRAY:
            sub = f.types[-1]
            if sub == GGUFValueType.STRING:
                val = [bytes(f.parts[i]).decode("utf-8", "replace") for i in f.data]
            else:
                val = [f.parts[i].tolist() for i in f.data]
            out[name] = (f"array[{sub.name}]", val)
        elif vt == GGUFValueType.STRING:
            out[name] = ("STRING", bytes(f.parts[f.data[0]]).decode("utf-8", "replace"))
        else:
            out[name] = (vt.name, f.parts[f.data[0]].tolist())
    return out


a, b = fields(sys.argv[1]), fields(sys.argv[2])
ignore = set()
if "--ignore" in sys.argv:
    ignore = set(sys.argv[sys.argv.index("--ignore") + 1].split(","))
bad = 0
for k in sorted(set(a) | set(b)):
    if k in ignore:
        continue
    if k not in a:
        print(f"only in {sys.argv[2]}: {k} = {str(b[k])[:120]}"); bad += 1
    elif k not in b:
        print(f"only in {sys.argv[1]}: {k} = {str(a[k])[:120]}"); bad += 1
    elif a[k] != b[k]:
        print(f"differs: {k}: {str(a[k])[:100]} vs {str(b[k])[:100]}"); bad += 1
print(f"{len(set(a) | set(b))} keys, {bad} differ (ignoring {sorted(ignore)})")
sys.exit(1 if bad else 0)
