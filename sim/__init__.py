"""The simulator: the mesa.Model round loop, the population graph, records, the Hydra entry."""
