"""Adversarial robustness of a model at a point: accuracy and loss under FGSM and PGD against eps, input-space
curvature, and the fixed adversarial evaluation sets that the other metrics can be computed on."""
