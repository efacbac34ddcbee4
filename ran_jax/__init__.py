"""ran_jax: the Residual Attention Network (arXiv 1704.06904) in JAX/Flax."""

__version__ = "0.1.0"
