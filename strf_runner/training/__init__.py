"""Fitting: the training loop, early stopping, checkpoints and seeding."""
