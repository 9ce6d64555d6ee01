"""Sweeps: a study file run on Ray Tune, Optuna choosing configurations, results in the trial database.

`sweeper.sweep.driver.submit` is the entry point (`sweeper submit`). Importing this package loads
nothing heavy; Ray and Optuna load in the driver and in the workers.
"""
