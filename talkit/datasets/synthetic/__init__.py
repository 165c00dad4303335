"""Synthetic videos, broken files and features with known ground truth."""
