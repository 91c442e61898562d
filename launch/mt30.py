"""mt30 (19 dm_control + 11 custom tasks) through the same machinery as launch/mt80.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launch.common import main  # noqa: E402

if __name__ == "__main__":
    main("mt30")
