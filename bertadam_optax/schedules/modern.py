"""Placeholder: the modern LLM schedules (being written)."""
__all__ = []
