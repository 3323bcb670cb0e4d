"""Task modules, one per domain. Task names are ``<queue>.<name>`` so routing follows the name."""

TASK_MODULES = [
    "workers.tasks.analytics",
    "workers.tasks.clicks",
    "workers.tasks.events",
    "workers.tasks.leaderboard",
    "workers.tasks.payouts",
    "workers.tasks.risk",
    "workers.tasks.sales",
]
