#!/usr/bin/env python3
"""llama.cpp's greedy continuation (argmax of the last logits, KV cache, llama.cpp's default f16
cache) of one prompt, via llama-cpp-python.

Usage: greedy_llamacpp.py MODEL.gguf IDS N OUT.json [--flash-attn]
Writes {"new_ids": [...], "margins": [top1 - top2 of each step]}.
"""
import json
import sys

import numpy as np
from llama_cpp import Llama

model, ids, n, out = sys.argv[1], [int(t) for t in sys.argv[2].split(",")], int(sys.argv[3]), sys.argv[4]
llm = Llama(model_path=model, n_ctx=max(512, len(ids) + n + 8), n_batch=512, logits_all=True,
            n_threads=2, flash_attn="--flash-attn" in sys.argv, verbose=False)
llm.eval(ids)
new, margins = [], []
for _ in range(n):
    logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    t = int(np.argmax(logits))  # ties: lowest id
    top2 = np.partition(logits, -2)[-2:]
    new.append(t)
    margins.append(float(top2[1] - top2[0]))
    llm.eval([t])
json.dump({"new_ids": new, "margins": margins}, open(out, "w"))
