"""Cost of the Kawase 2025 top Hessian eigenvalue on our engine: time per HVP per 1,000 images, HVPs per Lanczos.

Measures, on the study's exact 4-patch model (14x14 images, 8x8 patches with stride 6, 8 qubits, the `kawase`
ansatz, positional bias, readout x100) at L = 50, the time of one Hessian-vector product of the mean
cross-entropy over 1,000 images, and the number of HVPs Lanczos (SciPy eigsh) and power iteration need for the top
eigenvalue on a smaller-L model. MNIST itself cannot be downloaded here: random 14x14 images in [0, pi/4] stand in
(the cost of an HVP does not depend on the pixel values). Writes cost_estimate.json beside this file.

    python benchmarks/kawase/cost_estimate.py [--layers 50] [--images 1000] [--chunk 250]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from paper_scale import kawase_model  # this folder: the study's model, built in one place

from qlandscape.core.objective import Objective
from qlandscape.core.operators import hessian_operator
from qlandscape.metrics.curvature.eigensolvers import power_iteration, top_eigenvalues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--lanczos-layers", type=int, default=2)
    parser.add_argument("--lanczos-images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 14, 14, generator=g, dtype=torch.float64) * math.pi / 4
    y = torch.randint(0, 10, (args.images,), generator=g)

    model = kawase_model(args.layers, 6)
    obj = Objective(model, x, y, chunk_size=args.chunk)
    v = torch.randn(obj.n_params, generator=g, dtype=torch.float64)
    t0 = time.perf_counter()
    obj.loss()
    loss_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    obj.hvp(None, v)
    hvp_s = time.perf_counter() - t0
    per_1000 = hvp_s * 1000 / args.images

    small = Objective(kawase_model(args.lanczos_layers, 6), x[: args.lanczos_images], y[: args.lanczos_images])
    lanczos = top_eigenvalues(hessian_operator(small), 1, tol=1e-6)
    power = power_iteration(hessian_operator(small), tol=1e-6, max_iter=500)
    hvps = int(lanczos.n_matvecs)
    estimate_s = per_1000 * 60 * hvps
    out = {
        "threads": args.threads,
        "layers": args.layers,
        "n_params": obj.n_params,
        "images": args.images,
        "chunk": args.chunk,
        "loss_seconds": loss_s,
        "hvp_seconds": hvp_s,
        "hvp_seconds_per_1000_images": per_1000,
        "lanczos_model_layers": args.lanczos_layers,
        "lanczos_images": args.lanczos_images,
        "lanczos_hvps": hvps,
        "lanczos_lambda_max": float(lanczos.eigenvalues[-1]),
        "lanczos_residual": float(lanczos.residual_norms[-1]),
        "power_hvps": int(power.n_matvecs),
        "power_lambda_max": float(power.eigenvalues[-1]),
        "estimate_hours_60k_images": estimate_s / 3600,
    }
    path = Path(__file__).with_name("cost_estimate.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
