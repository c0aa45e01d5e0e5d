#!/usr/bin/env python3
"""Do cinder's logits (teacher-forced on prompt + llama.cpp's greedy tokens) pick llama.cpp's
greedy tokens? Prints: steps equal before the first difference (of N), and at that step
llama.cpp's and cinder's top1 - top2 margins.

Usage: teacher_forced_argmax.py CINDER.f32 VOCAB N_PROMPT GREEDY.json
"""
import json
import sys

import numpy as np

path, vocab, n_prompt, greedy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
g = json.load(open(greedy))
x = np.fromfile(path, dtype="<f4").reshape(-1, vocab)
steps = x[n_prompt - 1 : n_prompt - 1 + len(g["new_ids"])]
ours = steps.argmax(axis=1)
diff = [i for i, (a, b) in enumerate(zip(ours, g["new_ids"])) if a != b]
if not diff:
    print(f"{len(ours):2d}/{len(ours)} equal")
else:
    i = diff[0]
    top2 = np.sort(steps[i])[-2:]
    print(f"{i:2d}/{len(ours)} equal; step {i}: llama.cpp margin {g['margins'][i]:.2e}, "
          f"cinder margin {top2[1] - top2[0]:.2e}")
