"""The actors a node hosts: workers (activity functions for topics) and maintenance."""
