"""sweeper: hyperparameter sweeps and stability analysis for ephemeral-weight networks.

Importing the package is cheap: torch, ray, optuna and plotly load only in the modules that use them.
"""

__version__ = "0.1.0"
