"""Data shipped in the wheel: the default azuresim world, the sample
policy, sample alerts, the demo and drills."""
