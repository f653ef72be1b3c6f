"""Measuring on a noisy machine: the timed rounds (timing), the quiet gate that runs them only at full speed
(quiet_gate), what the machine can do and the floor of a call (limits), memory (footprint), and the machine's record
(machine). Below the suite: it knows impls and the reference model, never the run."""
