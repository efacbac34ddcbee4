"""The analysis layer: the soft masks of a network as maps, scores and pictures (paper Fig. 1)."""
