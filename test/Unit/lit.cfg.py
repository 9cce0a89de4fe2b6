# -*- Python -*-
# lit configuration for the GoogleTest unit tests.
import os
import sys

import lit.formats

config.name = "MOEQ-Unit"
config.suffixes = []
config.test_exec_root = os.path.join(config.moeq_obj_root, "test", "Unit")
config.test_source_root = config.test_exec_root
config.test_format = lit.formats.GoogleTest(".", "Tests")
config.environment["MOEQ_BIN_DIR"] = os.path.join(config.moeq_obj_root, "bin")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lit_sanitizers  # noqa: E402

lit_sanitizers.configure(config)
