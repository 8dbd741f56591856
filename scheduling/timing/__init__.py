"""The time core: zoned cron, anchored intervals, one-offs, slot ids and catch-up arithmetic.

Pure functions of their inputs; every instant in and out is an aware UTC `datetime`.
"""
