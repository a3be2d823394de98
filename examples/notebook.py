# %% [markdown]
# # mupredict from a notebook
#
# Cells in the `# %%` format (VS Code, Jupyter via jupytext, or `python examples/notebook.py`).
# Start a server and a worker first, in two terminals:
#
#     mupredict serve
#     mupredict worker
#
# (`make demo` does both, and trains the two example ladders, in one command.)

# %%
import json
import os
from pathlib import Path

from app.client import Client

url = os.environ.get("MUPREDICT_URL", "http://127.0.0.1:8000")
client = Client(url, token=os.environ.get("MUPREDICT_API_TOKEN"))
client.ready()

# %% [markdown]
# Register two candidate designs. A spec describes a family of models (everything but the width);
# registering the same spec twice returns the same architecture.

# %%
specs = Path(__file__).resolve().parent / "specs"
gelu = client.create_architecture(json.loads((specs / "gpt_gelu.json").read_text()))
swiglu = client.create_architecture(json.loads((specs / "gpt_swiglu.json").read_text()))
client.list_architectures().to_pandas()

# %% [markdown]
# Launch each design's proxy sweep (one run per width in the spec's `proxy_widths`) and wait for the
# workers. Launching again is free: finished runs are reused.

# %%
for arch in (gelu, swiglu):
    client.wait_for(client.create_sweep(arch.id))
runs = client.list_runs(architecture_id=gelu.id).to_pandas()
runs[["width", "status", "val_loss", "n_params_non_embedding"]]

# %% [markdown]
# The fitted law, and the prediction at a size far beyond the proxies, with its 90 % interval.

# %%
fit = client.get_fit(gelu.id)
print(fit.report)
target = 30 * fit.n_params_range[1]
prediction = client.predict(architecture_id=gelu.id, n_params=target)
print(f"{prediction.predicted_loss:.4f} in [{prediction.lower:.4f}, {prediction.upper:.4f}]")
print(prediction.warnings)

# %% [markdown]
# Which design wins at the target size, and how sure is that?

# %%
client.compare([gelu.id, swiglu.id], n_params=target).to_pandas()
