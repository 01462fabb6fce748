"""Which stimuli each fold of a k-fold cross-validation tests, validates and trains on (``cv.folds``).

The assignment depends only on the number of stimuli S, the number of folds k and the validation
size v; never on a seed. Stimuli are taken in dataset order 0 .. S-1:

- test: fold f tests the f-th of k contiguous blocks of nearly equal size (``np.array_split`` of
  0 .. S-1: the first S mod k blocks hold one stimulus more). Every stimulus is in exactly one fold's
  test set.
- val: the v stimuli that follow fold f's test block, cyclically (after stimulus S-1 comes 0). By
  default v is the size of the dataset file's own validation split (at least 1).
- train: every other stimulus.

Example, S = 7, k = 3, v = 1: fold 0 tests [0, 1, 2], validates on [3], trains on [4, 5, 6]; fold 1
tests [3, 4], validates on [5], trains on [0, 1, 2, 6]; fold 2 tests [5, 6], validates on [0], trains
on [1, 2, 3, 4].
"""

from __future__ import annotations

import numpy as np

from strf_runner.errors import ConfigError


def fold_test_sets(n_stimuli: int, folds: int) -> list[list[int]]:
    """The test stimuli of every fold, (k,) lists of dataset indices: the contiguous blocks of np.array_split."""
    return [block.tolist() for block in np.array_split(np.arange(n_stimuli), folds)]


def check_folds(n_stimuli: int, folds: int, val: int) -> None:
    """ConfigError naming the key when ``folds`` folds with ``val`` validation stimuli each cannot be cut
    from ``n_stimuli`` stimuli: more folds than stimuli, or no stimulus left to train on beside the
    largest test block and the validation stimuli."""
    if folds > n_stimuli:
        raise ConfigError(f"cv.folds={folds} is more than the dataset's {n_stimuli} stimuli: every fold needs a test "
                          f"stimulus (use cv.folds <= {n_stimuli})")
    largest = -(-n_stimuli // folds)
    if val > n_stimuli - largest - 1:
        raise ConfigError(
            f"cv.val={val}: too few stimuli left for validation: with cv.folds={folds} a fold tests up to {largest} of "
            f"the {n_stimuli} stimuli, leaving {n_stimuli - largest} for validation and training, and at least one "
            f"must train (use cv.val <= {max(n_stimuli - largest - 1, 0)} or fewer folds)"
        )


def fold_splits(n_stimuli: int, folds: int, fold: int, val: int) -> dict[str, list[int]]:
    """Fold ``fold``'s train / val / test dataset indices (each sorted; see the module docstring);
    ConfigError from ``check_folds`` when the folds cannot be cut."""
    check_folds(n_stimuli, folds, val)
    if not 0 <= fold < folds:
        raise ConfigError(f"cv.fold={fold} must be in 0..{folds - 1} (cv.folds={folds})")
    test = fold_test_sets(n_stimuli, folds)[fold]
    after = test[-1] + 1
    val_set = sorted((after + j) % n_stimuli for j in range(val))
    taken = set(test) | set(val_set)
    return {"train": [s for s in range(n_stimuli) if s not in taken], "val": val_set, "test": test}


def default_val(file_val: list[int]) -> int:
    """The validation size when ``cv.val`` is null: the dataset file's own validation split's, at least 1."""
    return max(1, len(file_val))
