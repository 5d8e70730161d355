from pathlib import Path
import bench  # benchmarks/bench.py (PYTHONPATH=benchmarks)
root = Path("/tmp/bench/data/bench_p100_n2500_d1024")
class A: patients=100; patches=2500; dim=1024; signal_scale="x5"; signal_strength=3.0  # the cohort as first written
spec = bench.cohort_spec(A)
for name, ov in [("bucketing", ["data.bucketing=true"]), ("packed+bucketing", ["data.bucketing=true", "++data.wsi.packed=true"]), ("bucketing+bf16", ["data.bucketing=true", "trainer.precision=bf16-mixed"]), ("plain", [])]:
    r = bench.survlab_loop("abmil", root, spec, 3, ov)
    print(name, [round(e,2) for e in r["epoch_s"]], round(r["train_patients_per_s"],1), round(r["eval_patients_per_s"],1))
u = bench.usual_loop("abmil", root, spec, 3)
print("usual", [round(e,2) for e in u["epoch_s"]], round(u["train_patients_per_s"],1), round(u["eval_patients_per_s"],1))
