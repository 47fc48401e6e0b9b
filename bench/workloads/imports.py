# Python imports: 13 standard-library packages an agent's tooling typically pulls in, timed around
# the imports only (the interpreter's own start-up is not in it). Each import opens and stats
# many files: its .pyc, the packages it imports in turn, extension modules.
import time

start = time.perf_counter_ns()
import json  # noqa: E402,F401
import email.parser  # noqa: E402,F401
import http.client  # noqa: E402,F401
import xml.etree.ElementTree  # noqa: E402,F401
import sqlite3  # noqa: E402,F401
import decimal  # noqa: E402,F401
import asyncio  # noqa: E402,F401
import argparse  # noqa: E402,F401
import logging  # noqa: E402,F401
import unittest  # noqa: E402,F401
import csv  # noqa: E402,F401
import zipfile  # noqa: E402,F401
import urllib.request  # noqa: E402,F401
elapsed = time.perf_counter_ns() - start
print(f"elapsed_ns {elapsed}")
