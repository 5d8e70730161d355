"""Why bf16 evaluation looked 4x slower (experiments/speed/README.md): time survlab's test pass (ABMIL, bucketing) after
one training epoch, fp32 and bf16-mixed alternating in one process, with the page faults and system time of each
pass. Run:  python experiments/speed/eval_alloc_check.py 32-true bf16-mixed 32-true bf16-mixed
and again with MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 (glibc reuses freed batch
buffers instead of mapping fresh zero pages). Needs the p100/n2500 bench cohort under /tmp/bench/data (or edit root)."""
import sys, time
from pathlib import Path
import lightning as L, torch
from torch.profiler import profile, ProfilerActivity
from survlab import bench
root = Path("/tmp/bench/data/bench_p100_n2500_d1024")
class A: patients=100; patches=2500; dim=1024; signal_scale="x5"; signal_strength=3.0
spec = bench.cohort_spec(A)
for prec in sys.argv[1:]:
    cfg = bench.compose("abmil", root, spec, ["data.bucketing=true", "trainer.max_epochs=1"])
    dm, net, task = bench.build(cfg)
    kw = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    tr = L.Trainer(max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, precision=prec, **kw)
    tr.fit(task, datamodule=dm)
    ts = []
    for _ in range(2):
        import resource
        f0 = resource.getrusage(resource.RUSAGE_SELF); t = time.perf_counter(); tr.test(task, datamodule=dm, verbose=False); ts.append(round(time.perf_counter() - t, 3))
        f1 = resource.getrusage(resource.RUSAGE_SELF); ts.append(("minflt", f1.ru_minflt - f0.ru_minflt, "sys", round(f1.ru_stime - f0.ru_stime, 2)))
    print(prec, "eval s", ts, "threads", torch.get_num_threads(), "rss", bench.PeakRSS.now()/1e9, flush=True)
    if False:
        with profile(activities=[ProfilerActivity.CPU]) as p:
            tr.test(task, datamodule=dm, verbose=False)
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
