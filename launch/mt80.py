"""The main job: one world model on mt80 (or any task set) with Ray actors.

python launch/mt80.py preset=laptop                                   # embedded local Ray
ray job submit --working-dir . -- python launch/mt80.py preset=cluster  # a cluster
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launch.common import main  # noqa: E402

if __name__ == "__main__":
    main("mt80")
