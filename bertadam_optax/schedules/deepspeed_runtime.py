"""Placeholder: DeepSpeed's runtime schedulers (being written)."""
__all__ = []
