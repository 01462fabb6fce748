"""A run config's identity: when two runs are the same computation, and where two configs differ.

A run's identity is its resolved config (nested dict) without the keys that say where or how fast it
ran (``VOLATILE_KEYS``). Sweeps reuse a finished run of equal ``config_hash``, ``resume=true`` checks
it, and reports group runs into arms by the keys that differ.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

# keys that say where or how fast a run ran, not what it computed: not part of its identity
VOLATILE_KEYS = frozenset(
    {"run_name", "sweep_root", "reuse_finished", "analysis", "resume", "trainer.threads", "trainer.cache_frontend"}
)
# and every key under these: where a run is copied to (experiment trackers)
VOLATILE_PREFIXES = ("logger.",)
# keys that tell the replicates of one arm apart
SEED_KEYS = frozenset({"seed", "data_seed"})
# keys that tell arms apart but not their results' identity: the same arm on any device
DEVICE_KEYS = frozenset({"device", "trainer.device"})


def volatile(key: str) -> bool:
    """A dotted key that says where or how a run ran, not what it computed (VOLATILE_KEYS, VOLATILE_PREFIXES)."""
    return key in VOLATILE_KEYS or key.startswith(VOLATILE_PREFIXES)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists are kept as values (as tuples, so they hash)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def differing_keys(old: dict[str, Any], new: dict[str, Any], ignore: Callable[[str], bool] = lambda k: False
                   ) -> list[str]:
    """Dotted keys whose values differ between two nested configs (missing counts as None), sorted
    with ``*.name`` keys first (the most telling difference); keys for which ``ignore`` is true are skipped."""
    a, b = flatten(old), flatten(new)
    keys = (k for k in set(a) | set(b) if a.get(k) != b.get(k) and not ignore(k))
    return sorted(keys, key=lambda k: (not k.endswith(".name"), k))


def config_hash(resolved: dict[str, Any]) -> str:
    """Content hash of a resolved run config (nested dict): 16 hex digits of SHA-256 over its
    canonical JSON, without the volatile keys and without null values (a key added to the schema
    later with a null default leaves the hashes of older runs valid). Equal hashes = the same
    computation."""
    flat = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in flatten(resolved).items()
        if not volatile(k) and v is not None
    }
    blob = json.dumps(flat, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
