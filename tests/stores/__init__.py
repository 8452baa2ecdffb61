"""Tests of the stores: what stanch keeps outside Temporal, used as libraries."""
