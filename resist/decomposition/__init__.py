"""ResIST's decomposition policies (pure): which partitionable blocks each worker holds in a round,
and the test-time residual scale. Policies are looked up by name (``decomposition.policy``)."""

from resist.decomposition.policy import POLICIES, Assignment, eval_residual_scale, paper_assignment, site_sizes

__all__ = ["POLICIES", "Assignment", "paper_assignment", "site_sizes", "eval_residual_scale"]
