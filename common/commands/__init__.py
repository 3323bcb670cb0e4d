"""Chores of the ``savebucks`` command, one module each; importing registers them."""
