"""FamilyPopulation.evaluate(fast=False): the fast state held at 0, what `sweeper train` reports as
`mem_acc_no_fast` next to the evaluation with the fast state running."""

from __future__ import annotations

import numpy as np
import torch

from sweeper.config import TrainConfig
from sweeper.engine.families.config import FamilyRun, FastWeightsHyper, FastWeightsModel, FWPHyper, FWPModel
from sweeper.engine.families.population import FamilyPopulation
from sweeper.tasks import make_task

TASK = make_task("key_recall", gap_max=2, n_values=3)


def trained(model, hypers, batches=3) -> FamilyPopulation:
    run = FamilyRun(TASK, model, TrainConfig(updater="bptt", batch_size=3, batches=batches, dtype="float64"))
    pop = FamilyPopulation(run, hypers)
    list(pop.run())
    return pop


def test_fastweights_without_the_fast_state_is_eta_zero():
    pop = trained(FastWeightsModel(hidden=6), [FastWeightsHyper(lr=0.05, eta=0.7, seed=1),
                                               FastWeightsHyper(lr=0.05, eta=0.0, seed=2)])
    before = pop.state_dict(0)
    on, off = pop.evaluate(2), pop.evaluate(2, fast=False)
    assert on["loss"][0] != off["loss"][0]  # member 0 reads its fast state
    assert on["loss"][1] == off["loss"][1]  # member 1 never writes one
    for name, value in pop.state_dict(0).items():
        assert torch.equal(value, before[name])  # nothing of the training state changed
    np.testing.assert_array_equal(pop.evaluate(2)["loss"], on["loss"])


def test_fwp_without_the_fast_state_reads_zero():
    model = FWPModel(d_model=4, d_key=3, d_value=3, layers=2, rule="delta", phi="identity")
    pop = trained(model, [FWPHyper(lr=0.05, seed=s) for s in (1, 2)])
    on, off = pop.evaluate(2), pop.evaluate(2, fast=False)
    assert (on["loss"] != off["loss"]).all()
    # the same as zeroing every layer's value projection by hand: nothing is written, every read is 0
    for name in pop.names:
        if name.endswith(".W_V"):
            pop.params[name].zero_()
    np.testing.assert_allclose(pop.evaluate(2)["loss"], off["loss"], rtol=1e-12)
