# Directory walk: os.walk plus os.stat of every file of a tree, timed inside.
#   python3 dir_walk.py TREE
# Directories are opened (scandir), files only stat'ed: the cost is in directory opens and stats.
import os
import sys
import time

start = time.perf_counter_ns()
files = 0
for directory, _, names in os.walk(sys.argv[1]):
    for name in names:
        os.stat(os.path.join(directory, name))
        files += 1
elapsed = time.perf_counter_ns() - start
print(f"files {files}")
print(f"elapsed_ns {elapsed}")
