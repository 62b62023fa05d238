"""Small example models shared by the demo, the notebooks and the tests (needs flax)."""
