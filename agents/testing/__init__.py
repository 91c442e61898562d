"""What the tests and the benchmarks share on the agent side, as torch.testing is to torch: synthetic
TD-MPC2 checkpoints and a reference forward pass (tdmpc2_checkpoints.py), kernel-launch counting
(launches.py), the planner's reference plans (plan_reference.py, data in tests/agents/data/).

Only tests and bench/ import this package; the main code path (agents/, launch/) never does.
"""
