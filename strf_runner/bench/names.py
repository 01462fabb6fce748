"""The names of strf-bench's naive reference rows (light: the CLI imports them before any torch)."""

DIRECT = "leaf-direct"  # front-end row: LEAF by its definition, a direct 721-tap convolution
TORCH_RNN = "statenet-torch"  # model row: StateNet with torch's own GRU instead of the compiled recurrence
