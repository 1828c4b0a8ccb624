"""Online evaluation, pure parts: team-draft interleaving, the sequential test a rollout decides with, and a
simulated user (cascade click model) for tests and the bench.

Nothing here touches the catalog, the store or the API: the service (rollouts) feeds counts in and acts on the
decisions that come out, so the statistics can be tested and benchmarked on their own.
"""
