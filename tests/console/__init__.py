# A package, so tests/console/test_preview.py and tests/digest/test_preview.py may share a basename.
