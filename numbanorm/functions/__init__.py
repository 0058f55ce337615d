"""Differentiable Functions: each one's forward and backward side by side."""
