"""Classifier heads that sit on feature-store columns: XGBoost, an MLP and logistic regression.

One module per head (:mod:`.xgb`, :mod:`.mlp`, :mod:`.logreg`), their shared base
(:mod:`.base`) and the registry by name (:mod:`.registry`).

Every head is a scikit-learn classifier whose ``fit`` accepts an optional ``groups`` array (one
id per training clip; a benchmark passes the clip's source recording). Anything a head learns
from data -- imputation medians, standardisation, the early-stopping split, hyper-parameters --
is taken from the rows given to ``fit`` only, so a head called on the training folds never sees
a test clip.

Heads that stop early hold out validation rows drawn by :func:`validation_split`: whole groups
when ``groups`` are given (so clips of one recording are never on both sides), a stratified
share of the clips otherwise. Each records what it held out (``validation_kind_``: ``groups``,
``clips`` or ``none``), and takes a kind to impose (``validation_kind``): a branch's inner
out-of-fold twins stop early on the kind of split their member used
(:func:`featurekit.fusion.fit_branch`), so the models that teach the fusions are trained like
the ones that are tested. Defaults (chosen on ESC-10 and on single UrbanSound8K training
folds split by recording, never on a reported test fold; the measurements and the commands
that reproduce them are in ``benchmarks/notes/heads.md``):

* ``xgb``: histogram trees (16 bins), depth 4, 10 % of the columns per tree, learning rate
  0.2, 100 rounds on all training rows, no validation split. A multi-class or multi-label
  round grows one tree per class, so rounds dominate the cost (XGBoost's
  ``multi_output_tree`` was measured slower and less accurate at 56 and 200 classes:
  ``benchmarks/notes/scale.md``).
* ``mlp``: one hidden layer of 64 ReLU units on standardised inputs, Adam (step 3e-3,
  batches of about 256 clips), float32. A first network stops 30 epochs after its best
  validation error (ties broken by log-loss) on held-out groups; the final network is trained
  on all training rows for that many epochs.
* ``logreg``: L2 logistic regression (``C=1.0``) on standardised inputs, the linear reference;
  it has no early stopping and ignores ``groups``.

Every head also fits multi-label targets: given a label-indicator matrix ``y`` of shape
(n_samples, n_classes) it predicts independent per-class probabilities (XGBoost: one logistic
output per class; the MLP: sigmoid outputs with binary cross-entropy; logistic regression:
one binary regression per class, all solved by one L-BFGS, the one-vs-rest optimum), its
early-stopping split stratified by each row's rarest label
(:func:`stratification_labels`).

The optional hyper-parameter search (:func:`tune_head`) tries a grid of at most four
candidates per head (``HeadSpec.param_grid``) by inner cross-validation over the training
rows' own folds (:func:`inner_splits`) and keeps the most accurate.
"""
