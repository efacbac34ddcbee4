"""Offline datasets bundled with ran_jax."""
