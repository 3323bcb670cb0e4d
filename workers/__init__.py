"""Celery workers: one module of tasks per domain, the beat schedule, the worker's resources."""
