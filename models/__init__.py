"""Pydantic types shared by every room of stanch."""
