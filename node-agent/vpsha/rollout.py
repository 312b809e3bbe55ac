"""vps-ha rollout gate: when a node applies a new generation of its desired state.

This one applies at once; the rolling, health-gated gate replaces it with the same signature.
"""


def apply_gated(spec, node, apply, rollback, status):
    """Applies the change now (no ordering between nodes); True: applied."""
    apply()
    return True
