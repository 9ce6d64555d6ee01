"""Two more fast-weight model families, next to the ephemeral model of `sweeper.engine`.

- `fastweights`: the fast-weight RNN of Ba et al. (2016), "Using fast weights to attend to the
  recent past": a recurrent net whose fast matrix `A(t) = lambda A(t-1) + eta h(t) h(t)^T`
  is read in an inner loop.
- `fwp`: fast weight programmers (linear attention and its delta-rule variants): a slow net
  writes a fast matrix `W_t` from keys, values and a learning-rate signal, and reads it with a query.

docs/families.md states their exact semantics. `config` holds the validated configuration,
`init` the seeded initial weights, `metrics` the names of the per-batch metrics, and `reference`
the plain one-member implementations (readable loops with autograd), which are the oracle of any
faster implementation.
"""
