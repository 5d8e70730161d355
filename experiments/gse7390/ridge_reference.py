"""Reference for GSE7390 on survlab's splits: ridge Cox (sksurv CoxPHSurvivalAnalysis, alpha chosen on the inner val split)."""
import numpy as np, pandas as pd
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
import sys
root = sys.argv[1] if len(sys.argv) > 1 else "data/gse7390"
clin = pd.read_csv(f"{root}/clinical.csv"); expr = pd.read_csv(f"{root}/expression.csv")
df = clin.merge(expr, on="case_id")
genes = [c for c in expr.columns if c != "case_id"]
X_clin = pd.get_dummies(df[["age", "er", "grade", "size"]].astype({"er": str, "grade": str}), dtype=float)
for name, X in [("genes", df[genes].to_numpy(float)), ("genes+clinical", np.hstack([df[genes].to_numpy(float), X_clin.to_numpy()]))]:
    cs = []
    for k in range(5):
        sp = pd.read_csv(f"{root}/splits/os_k5_seed0/splits_{k}.csv").set_index("case_id")["split"]
        part = df["case_id"].map(sp).to_numpy()
        t, e = df["survival_months"].to_numpy(), df["censorship"].to_numpy() == 0
        y = np.array(list(zip(e, t)), dtype=[("e", bool), ("t", float)])
        tr = part == "train"; va = part == "val"; te = part == "test"
        mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-8; Z = (X - mu) / sd
        best = max([1, 10, 100, 1000], key=lambda a: concordance_index_censored(e[va], t[va], CoxPHSurvivalAnalysis(alpha=a).fit(Z[tr], y[tr]).predict(Z[va]))[0])
        trv = tr | va
        m = CoxPHSurvivalAnalysis(alpha=best).fit(Z[trv], y[trv])
        cs.append(concordance_index_censored(e[te], t[te], m.predict(Z[te]))[0])
    print(name, np.round(cs, 3), f"{np.mean(cs):.3f} ± {np.std(cs, ddof=1):.3f}")
