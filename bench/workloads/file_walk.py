# File walk: reads every file under the standard library (or a part of it), timed inside.
#   python3 file_walk.py [SUBDIR]    (SUBDIR of the stdlib directory; default: all of it)
# Every file is opened, read to the end and closed: one open per file, the cost MIS adds per open.
import os
import sys
import sysconfig
import time

root = os.path.join(sysconfig.get_paths()["stdlib"], *sys.argv[1:2])
start = time.perf_counter_ns()
files = 0
size = 0
for directory, _, names in os.walk(root):
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            size += len(f.read())
        files += 1
elapsed = time.perf_counter_ns() - start
print(f"files {files} bytes {size}")
print(f"elapsed_ns {elapsed}")
