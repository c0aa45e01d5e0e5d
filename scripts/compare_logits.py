#!/usr/bin/env python3
"""Per-position relative RMS error of two logit files (float32 LE, [n_tokens, vocab]).

Usage: compare_logits.py OURS.f32 REF.f32 VOCAB
Prints one line: positions, mean and max over positions of rms(ours - ref) / rms(ref), the
position of the max, max |ours - ref| and how many positions have a different argmax.
"""
import sys

import numpy as np

ours_path, ref_path, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3])
a = np.fromfile(ours_path, dtype="<f4").astype(np.float64).reshape(-1, vocab)
b = np.fromfile(ref_path, dtype="<f4").astype(np.float64).reshape(-1, vocab)
if a.shape != b.shape:
    sys.exit(f"compare_logits: shapes differ: {a.shape} vs {b.shape}")
rel = np.sqrt(((a - b) ** 2).mean(axis=1)) / np.sqrt((b**2).mean(axis=1))
print(
    f"{a.shape[0]:4d} {rel.mean():.2e} {rel.max():.2e} {int(rel.argmax()):4d} "
    f"{np.abs(a - b).max():.2e} {int((a.argmax(1) != b.argmax(1)).sum()):3d}"
)
