"""The project's root on sys.path, so the unit tests import runbooks/ as it is run."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
