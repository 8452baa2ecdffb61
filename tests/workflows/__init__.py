"""Tests of workflows/: the pure cores here, alone and fast."""
