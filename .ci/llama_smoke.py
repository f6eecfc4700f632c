"""Exit 0 when the installed llama.cpp can run the embedded model on this CPU, 1 when it cannot.

A llama-cpp-python wheel built on another machine with GGML_NATIVE can use instructions this
machine's hypervisor refuses (AMX tiles: `ldtilecfg` faults in a VM without AMX state), and the
process dies without a Python error. `.ci/run` runs this in a child and rebuilds if it dies.
"""

from __future__ import annotations

import sys

from llama_cpp import Llama

from orchestrator.local_model import find_embedded_model

model = Llama(model_path=str(find_embedded_model()), n_ctx=256, n_threads=1, verbose=False)
out = model.create_completion("Hello", max_tokens=2)
sys.exit(0 if out else 1)
