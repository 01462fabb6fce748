"""``strf-bench``: performance measurements on NS1-sized input (front-ends, whole epochs, references).

Not a test: tests check that the fast paths equal their definitions; this package times them.
"""
