"""What the tests and the benchmarks share on the distributed side, as torch.testing is to torch:
fault-injection scenarios and store ledgers (faults.py), a Ray cluster of several nodes simulated on
one machine and node-loss runs on it (cluster.py, node_loss.py), a moto S3 server on loopback
(s3_server.py), job helpers (jobs.py) and the termination-head study (termination.py).

Only tests and bench/ import this package; the main code path (distributed/, launch/) never does.
"""
