"""The 11 custom dm_control tasks of TD-MPC2's mt30, keyed by (dm_control domain, task)."""
CUSTOM_TASKS: dict = {}
