"""Classical estimators fitted exactly instead of by gradient descent (model=coxnet: scikit-survival's
penalised Cox)."""
