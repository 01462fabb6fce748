"""Run outputs: atomic run-dir writing, per-neuron tables and run summaries."""
