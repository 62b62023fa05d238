"""Placeholder: the pytorch-pretrained-bert 0.6.2 schedules (being written)."""
__all__ = []
