"""Train in one process (no Ray; debuggable): one task, a few, or offline from a replay store.

python launch/train.py task=walker-walk steps=50000
python launch/train.py task=mt80 num_runners=0 offline_data=data/mt80 steps=100000   # offline
python launch/train.py task=walker-walk offline_data=<store> offline_ratio=0.5      # mixed
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launch.common import main  # noqa: E402

if __name__ == "__main__":
    main("train")
