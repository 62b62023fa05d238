"""Small example models for the demo, notebooks and tests (they need flax)."""
