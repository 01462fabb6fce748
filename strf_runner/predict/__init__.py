"""Predicting neural responses to any sound with a finished run's model (``strf-predict``)."""
