"""Gymnasium adapters: action scaling and vectorised evaluation."""
