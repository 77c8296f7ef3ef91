"""Cost of the measuring schedules against a base step (benchmarks/bench_curvature.py's ``bench``):
field measure, one-sided difference, every 1, 10 and 20 steps, CPU time of one torch thread, ring8.

    PYTHONPATH=. nice -n 5 python results/controller-ablation/cost.py > results/controller-ablation/cost.txt
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_curvature as B  # noqa: E402

print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
res = B.bench(100, 5, variants=[("field", "fd"), ("own", "fd")], everys=(1, 10, 20))
print(f"ring8 GAN, SGD, one torch thread: base step {res['base_ms_per_step']:.3f} ms (min over 5 blocks of 100 steps)")
for r in res["configs"]:
    print(f"  curvature={r['curvature']:<5} every {r['curvature_every']:2d}: {r['ms_per_step']:.3f} ms/step, "
          f"overhead {r['overhead_percent']:6.1f}% of a base step, {r['measurements_per_step']:.3f} measurements/step")
print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
print(json.dumps(res))
