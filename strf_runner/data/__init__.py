"""Datasets: the HDF5 format, loaders (synthetic, user files), collate."""
