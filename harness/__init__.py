"""What the tests and the benchmarks share: the launcher of real `snapdex serve`, worker, Redis and PostgreSQL
processes (procs.py), in-process runtimes and indexes (helpers.py), hostile inputs (runaway_inputs.py) and a
webhook receiver (receiver.py). The benchmarks import no test module (tests/unit/test_layering.py), so these live
apart from tests/; like tests/ and bench/, the package is not installed."""
