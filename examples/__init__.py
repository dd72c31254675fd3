"""Examples for pgworker: `make demo` runs demo.py with the tasks in demo_tasks.py."""
