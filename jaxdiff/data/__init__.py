"""Datasets (Minari, built-in toy problems) and the functional replay buffer."""
