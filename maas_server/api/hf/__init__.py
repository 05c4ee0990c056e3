"""Hugging Face's inference addresses under /models/NAME (inference.py) and their shapes (schemas.py)."""
