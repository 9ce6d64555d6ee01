"""Stability analysis over finished studies: the boundary classifier, frontier proposals, the figures.

    boundary.py  fit_boundary / latest_fit / p_stable: P(stable) from log-scaled hyperparameters
                 (Fig. 7's line, with bootstrap intervals, cross-validated accuracy, per-cell rates)
    frontier.py  propose: configurations near the current fitted boundary (the `frontier` search kind)
                 and the predicted-explosion filter of Optuna studies (`[search] boundary_fit`)
    compare.py   trials a frontier study needs to reach a grid study's boundary estimate
    figures.py   fig6 / fig7: the paper's figures as Plotly figures of a study
    window.py    memory_window: per cell, members exploded / stable without memory / stable remembering;
                 fit_window: the stability boundary, the memory onset and the window between them

Importing this package loads nothing heavy: scikit-learn and Plotly load inside the functions that
use them.
"""

__all__ = ["boundary", "compare", "figures", "frontier", "window"]
